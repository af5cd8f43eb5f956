// The logrotate configuration of one environment: rotation of <root>/logs that loses no line.
// The project root is not known here (nothing machine-specific is generated): the file carries
// ROOT_PLACEHOLDER, which install-systemd replaces when it installs the file.
import path from "node:path";
import type { OutputBuilder } from "./types.js";
import { commentHeader } from "./header.js";

/** Stands for the project root in the generated file; replaced verbatim at install time. */
export const ROOT_PLACEHOLDER = "@@DEPLOYGEN_ROOT@@";

/** Characters a root (or an absolute path) cannot carry in logrotate's double-quoted glob paths. */
export const LOGROTATE_UNSAFE_PATH = /["\\*?[\n\r\0]/;

export const logrotateOutputs: OutputBuilder = (project, environment, renderer) => {
  const logDirs = [...new Set(environment.apps.flatMap((app) => [app.outLog, app.errorLog].map((file) => path.posix.dirname(file))))];
  if (logDirs.length !== 1) throw new Error(`the apps of ${environment.name} log into ${logDirs.length} folders; the logrotate configuration expects one`);
  const pm2Home = environment.pm2Home;
  const safeProjectHome = pm2Home.kind === "project" && !LOGROTATE_UNSAFE_PATH.test(pm2Home.path);
  const safeAbsoluteHome = pm2Home.kind === "absolute" && !LOGROTATE_UNSAFE_PATH.test(pm2Home.path);
  const view = {
    header: commentHeader(project, "#"),
    project: project.project,
    environment: environment.name,
    installScript: path.posix.join(project.output, environment.files.installSystemd),
    installedName: path.posix.basename(environment.files.logrotate, ".conf"),
    rootPlaceholder: ROOT_PLACEHOLDER,
    logDir: logDirs[0]!,
    user: environment.user,
    group: environment.group ?? environment.user,
    maxSize: environment.logs.maxSize,
    keep: environment.logs.keep,
    pm2HomeUnderRoot: pm2Home.kind === "project" ? pm2Home.path : null,
    pm2HomeAbsolute: pm2Home.kind === "absolute" ? pm2Home.path : null,
    pm2HomeDefault: pm2Home.kind === "default",
    // PM2's own log is rotated when its folder is the project's or an absolute one the file can
    // name (the default ~/.pm2 of the service user is not known until install).
    pm2LogUnderRoot: safeProjectHome ? `${pm2Home.path}/pm2.log` : null,
    pm2LogAbsolute: safeAbsoluteHome ? `${pm2Home.path}/pm2.log` : null,
  };
  return [{ path: environment.files.logrotate, mode: 0o644, content: renderer.render("logrotate/logrotate.conf", view) }];
};
