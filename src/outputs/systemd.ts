// The systemd template unit, and the health-check service and timer.
import path from "node:path";
import type { OutputBuilder } from "./types.js";
import type { ResolvedProject, ResolvedEnvironment } from "../model.js";
import { commentHeader } from "./header.js";

/** Fields shared by the unit views: paths are relative to the project root (%f). */
export function unitView(project: ResolvedProject, environment: ResolvedEnvironment) {
  const fromRoot = (file: string) => path.posix.join(project.output, file);
  return {
    header: commentHeader(project, "#"),
    project: project.project,
    environment: environment.name,
    user: environment.user,
    group: environment.group ?? null,
    unitPrefix: environment.unitPrefix,
    rootEnvVar: project.rootEnvVar,
    // Data only; the template adds the %f specifier outside the escaped part (escaping "%f" here
    // would double its "%" and set the variable to the literal text "%f").
    pm2HomeUnderRoot: environment.pm2Home.kind === "project" ? environment.pm2Home.path : null,
    pm2HomeAbsolute: environment.pm2Home.kind === "absolute" ? environment.pm2Home.path : null,
    /** Capabilities are dropped for a non-root service user (it has none to use anyway). */
    dropCapabilities: environment.user !== "root",
    startScript: fromRoot(environment.files.start),
    stopScript: fromRoot(environment.files.stop),
    healthCheckScript: fromRoot(environment.files.healthCheck),
    installScript: fromRoot(environment.files.installSystemd),
    startTimeoutSeconds: environment.startTimeoutSeconds,
    stopTimeoutSeconds: environment.stopTimeoutSeconds,
    intervalSeconds: environment.healthIntervalSeconds,
    timerName: environment.healthTimerTemplate,
    healthUnit: environment.healthUnitTemplate,
    healthUnitPrefix: environment.healthUnitPrefix,
  };
}

export const systemdOutputs: OutputBuilder = (project, environment, renderer) => {
  const view = unitView(project, environment);
  return [
    { path: environment.files.unit, mode: 0o644, content: renderer.render("systemd/app.service", view) },
    { path: environment.files.healthUnit, mode: 0o644, content: renderer.render("systemd/health.service", view) },
    { path: environment.files.healthTimer, mode: 0o644, content: renderer.render("systemd/health.timer", view) },
  ];
};
