// Cross-field rules that a schema cannot express. Each is small, named, and returns problems
// with a manifest path; validate.ts adds file and position.
import path from "node:path";
import { remoteNeedsHosts, pm2DeployCarriesRemote } from "./remote-rules.js";
import type { Manifest } from "./schema.js";
import { effectiveApp } from "../effective-app.js";
import { namespaceName, pm2AppName, projectEnvNameVar, projectRootVar, unitNames } from "../names.js";

export interface RuleProblem {
  path: (string | number)[];
  message: string;
  fix: string;
}

export type Rule = (manifest: Manifest) => RuleProblem[];

function* eachAppInEachEnvironment(manifest: Manifest) {
  for (const [envName, environment] of Object.entries(manifest.environments)) {
    for (const [appName, app] of Object.entries(manifest.apps)) {
      yield { envName, environment, appName, app: effectiveApp(app, environment, appName) };
    }
  }
}

export const overridesNameExistingApps: Rule = (manifest) =>
  Object.entries(manifest.environments).flatMap(([envName, environment]) =>
    Object.keys(environment.apps)
      .filter((appName) => !(appName in manifest.apps))
      .map((appName) => ({
        path: ["environments", envName, "apps", appName],
        message: `overrides an app "${appName}" that apps does not define`,
        fix: `use one of: ${Object.keys(manifest.apps).join(", ") || "(no apps defined)"}`,
      })),
  );

export const atLeastOneAppAndEnvironment: Rule = (manifest) => [
  ...(Object.keys(manifest.apps).length === 0 ? [{ path: ["apps"], message: "no apps are defined", fix: "add at least one app under apps" }] : []),
  ...(Object.keys(manifest.environments).length === 0
    ? [{ path: ["environments"], message: "no environments are defined", fix: "add at least one environment (for example staging) under environments" }]
    : []),
];

export const standardNodeEnv: Rule = (manifest) => {
  const suggestion = projectEnvNameVar(manifest.project);
  const problems: RuleProblem[] = [];
  const check = (env: Record<string, string> | undefined, at: (string | number)[]) => {
    const value = env?.NODE_ENV;
    if (value !== undefined && !["development", "production", "test"].includes(value)) {
      problems.push({
        path: [...at, "NODE_ENV"],
        message: `NODE_ENV is "${value}"; Node.js and Next.js only know development, production and test`,
        fix: `set NODE_ENV to production and put "${value}" in a project variable such as ${suggestion}`,
      });
    }
  };
  for (const [appName, app] of Object.entries(manifest.apps)) check(app.env, ["apps", appName, "env"]);
  for (const [envName, environment] of Object.entries(manifest.environments)) {
    check(environment.env, ["environments", envName, "env"]);
    for (const [appName, override] of Object.entries(environment.apps)) check(override.env, ["environments", envName, "apps", appName, "env"]);
  }
  return problems;
};

export const nextjsRunsInProduction: Rule = (manifest) => {
  const problems: RuleProblem[] = [];
  for (const { envName, appName, app } of eachAppInEachEnvironment(manifest)) {
    const value = app.env.NODE_ENV;
    if (app.runtime === "nextjs" && value !== undefined && value !== "production") {
      problems.push({
        path: ["apps", appName, "env", "NODE_ENV"],
        message: `a nextjs app runs next start, which needs NODE_ENV=production, but environment ${envName} gives "${value}"`,
        fix: "remove NODE_ENV from this app's env (deploygen sets production)",
      });
    }
  }
  return problems;
};

/** Dev servers: hot reload, unoptimised bundles and exposed source maps have no place outside development. */
const DEV_SERVER_SIGNS: { test: (script: string, args: string[]) => boolean; what: string; field: "script" | "args" }[] = [
  { test: (script, args) => /(^|\/)next$/.test(script) && args[0] === "dev", what: "next dev", field: "args" },
  { test: (_script, args) => args.includes("next") && args[args.indexOf("next") + 1] === "dev", what: "next dev", field: "args" },
  { test: (script, args) => /(^|\/)(npm|pnpm|yarn|bun)$/.test(script) && (args[0] === "dev" || (args[0] === "run" && args[1] === "dev")), what: "a dev script", field: "args" },
  { test: (script) => /(^|\/)(nodemon|ts-node-dev)$/.test(script), what: "a watching dev runner", field: "script" },
  { test: (script, args) => /(^|\/)vite$/.test(script) && !args.includes("preview") && !args.includes("build"), what: "the vite dev server", field: "script" },
  { test: (_script, args) => args.includes("--reload") || args.includes("--watch"), what: "auto-reload (--reload/--watch)", field: "args" },
];

export const noDevServerOutsideDevelopment: Rule = (manifest) => {
  const problems: RuleProblem[] = [];
  for (const { envName, appName, app, environment } of eachAppInEachEnvironment(manifest)) {
    if (envName === "development") continue;
    const sign = DEV_SERVER_SIGNS.find((candidate) => candidate.test(app.script ?? "", app.args));
    if (!sign) continue;
    const overridden = sign.field === "args" && environment.apps[appName]?.args !== undefined;
    problems.push({
      path: overridden ? ["environments", envName, "apps", appName, "args"] : ["apps", appName, sign.field],
      message: `app ${appName} runs ${sign.what} in environment ${envName}; dev servers belong only in an environment named development`,
      fix: sign.what === "next dev"
        ? "use runtime: nextjs (next start after a build step) instead of next dev"
        : "run the production server (for example uvicorn without --reload, node dist/server.js) and build first",
    });
  }
  return problems;
};

export const uniquePortsPerEnvironment: Rule = (manifest) => {
  const problems: RuleProblem[] = [];
  for (const [envName, environment] of Object.entries(manifest.environments)) {
    const owners = new Map<number, string>();
    for (const [appName, app] of Object.entries(manifest.apps)) {
      const port = effectiveApp(app, environment, appName).port;
      if (port === undefined) continue;
      const owner = owners.get(port);
      if (owner !== undefined) {
        // Point at the override that causes the clash: this app's, else the first owner's.
        const culprit = [appName, owner].find((candidate) => environment.apps[candidate]?.port !== undefined);
        problems.push({
          path: culprit ? ["environments", envName, "apps", culprit, "port"] : ["apps", appName, "port"],
          message: `port ${port} is used by both ${owner} and ${appName} in environment ${envName}`,
          fix: culprit
            ? `give ${culprit} another port in environment ${envName}`
            : `give ${appName} another port (or override it under environments.${envName}.apps.${appName}.port)`,
        });
      } else owners.set(port, appName);
    }
  }
  return problems;
};

export const runtimeFields: Rule = (manifest) => {
  const problems: RuleProblem[] = [];
  for (const [appName, app] of Object.entries(manifest.apps)) {
    if (app.runtime === "nextjs" && app.script !== undefined)
      problems.push({ path: ["apps", appName, "script"], message: "a nextjs app's script is implied (node_modules/.bin/next)", fix: "remove script, or use runtime: node" });
    if (app.runtime === "nextjs" && app.args.length > 0)
      problems.push({ path: ["apps", appName, "args"], message: "a nextjs app's args are implied (start -H <host> -p <port>)", fix: "remove args; set host and port instead" });
    if (app.runtime === "nextjs" && app.port === undefined)
      problems.push({ path: ["apps", appName], message: "a nextjs app needs a port", fix: "add port: <number>" });
    if (app.runtime !== "nextjs" && app.script === undefined)
      problems.push({ path: ["apps", appName], message: `a ${app.runtime} app needs a script`, fix: app.runtime === "python" ? "add script: .venv/bin/python (and args)" : "add script: <file relative to cwd>" });
  }
  for (const { envName, appName, app } of eachAppInEachEnvironment(manifest)) {
    if (app.instances !== undefined && app.instances !== 1 && app.runtime !== "node" && app.runtime !== "nextjs") {
      const overridden = manifest.environments[envName]?.apps[appName]?.instances !== undefined;
      problems.push({
        path: overridden ? ["environments", envName, "apps", appName, "instances"] : ["apps", appName, "instances"],
        message: `instances (PM2 cluster mode) needs a node or nextjs app; ${appName} is ${app.runtime}`,
        fix: "remove instances, or let the app server run its own workers (for example uvicorn --workers)",
      });
    }
    if (app.health !== undefined && app.port === undefined)
      problems.push({ path: ["apps", appName, "health"], message: `health needs a port, and ${appName} has none in environment ${envName}`, fix: "add port, or remove health" });
    if (app.args.some((arg) => arg.includes("{port}")) && app.port === undefined)
      problems.push({ path: ["apps", appName, "args"], message: `args use {port} but ${appName} has no port in environment ${envName}`, fix: "add port" });
  }
  return problems;
};

/** The PM2 process options (instances, execMode, nodeArgs, waitReady, cronRestart...) fit the app's runtime. */
export const processOptions: Rule = (manifest) => {
  const problems = new Map<string, RuleProblem>();
  const report = (envName: string, appName: string, field: string, message: string, fix: string) => {
    const overridden = (manifest.environments[envName]?.apps[appName] as Record<string, unknown> | undefined)?.[field] !== undefined;
    const at = overridden ? ["environments", envName, "apps", appName, field] : ["apps", appName, field];
    // An app field is checked once per environment: report it once.
    problems.set(`${at.join("\0")}\0${message}`, { path: at, message, fix });
  };
  for (const { envName, appName, app } of eachAppInEachEnvironment(manifest)) {
    const isNode = app.runtime === "node" || app.runtime === "nextjs";
    if (app.instances === 0)
      report(envName, appName, "instances", "instances 0 means one per CPU to PM2, which reads like none", "write instances: max");
    if (app.execMode === "cluster" && !isNode)
      report(envName, appName, "execMode", `cluster mode (PM2's node cluster module) needs a node or nextjs app; ${appName} is ${app.runtime}`, "remove execMode, or let the app server run its own workers (for example uvicorn --workers)");
    if (app.execMode === "fork" && app.instances !== undefined && app.instances !== 1)
      report(envName, appName, "execMode", `execMode fork with instances ${String(app.instances)} starts separate processes that would all bind the same port`, "remove execMode (several instances run in cluster mode), or set instances: 1");
    if (app.nodeArgs !== undefined && !isNode)
      report(envName, appName, "nodeArgs", `nodeArgs are options for node, and ${appName} is a ${app.runtime} app`, app.runtime === "python" ? "use interpreterArgs for Python's options" : "put the options in args");
    if (app.interpreterArgs !== undefined && app.runtime !== "python")
      report(envName, appName, "interpreterArgs", `interpreterArgs are options for the Python interpreter, and ${appName} is a ${app.runtime} app`, isNode ? "use nodeArgs for node's options" : "put the options in args");
    if (app.waitReady && app.runtime !== "node")
      report(
        envName,
        appName,
        "waitReady",
        `waitReady waits for process.send('ready') from a node app, and ${appName} is ${app.runtime === "nextjs" ? "next start, which never sends it" : `a ${app.runtime} app`}`,
        "remove waitReady (deploy waits for the health URL either way)",
      );
    if (app.cronRestart !== undefined) {
      const problem = cronProblem(app.cronRestart);
      if (problem) report(envName, appName, "cronRestart", `cronRestart ${JSON.stringify(app.cronRestart)}: ${problem}`, 'write 5 fields (minute hour day month weekday), for example "0 4 * * *" for 04:00 every day');
    }
  }
  return [...problems.values()];
};

const CRON_FIELD = /^(\*|\?|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(\/[0-9]+)?(,(\*|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(\/[0-9]+)?)*$|^[0-9]*[LW#][0-9]*$/;

/** Why a cron expression is not one PM2's cron parser takes (5 or 6 fields of numbers, names, ranges, lists, steps), if it is not. */
export function cronProblem(expression: string): string | undefined {
  const fields = expression.trim().split(/\s+/);
  if (fields.length < 5 || fields.length > 6) return `has ${fields.length} field${fields.length === 1 ? "" : "s"}, not 5 (or 6 with seconds first)`;
  const bad = fields.find((field) => !CRON_FIELD.test(field));
  return bad === undefined ? undefined : `the field ${JSON.stringify(bad)} is not a number, name, range, list or step`;
}

function pathProblem(value: string, at: (string | number)[], what: string, allowAbsolute = false): RuleProblem[] {
  if (path.posix.isAbsolute(value) && !allowAbsolute)
    return [{ path: at, message: `${what} is the absolute path ${value}; generated files must work wherever the project is checked out`, fix: `write it relative to ${what === "cwd" || what === "output" || what.startsWith("env") ? "the project root (the manifest's folder)" : "the app's cwd"}` }];
  if (value.startsWith("~"))
    return [{ path: at, message: `${what} starts with "~", which only a shell expands`, fix: "write a project-relative path" }];
  const normalized = path.posix.normalize(value);
  if (!allowAbsolute && (normalized === ".." || normalized.startsWith("../")))
    return [{ path: at, message: `${what} ${value} leaves the project root`, fix: "keep project paths inside the project (the manifest's folder)" }];
  return [];
}

export const projectRelativePaths: Rule = (manifest) => {
  const problems: RuleProblem[] = [...pathProblem(manifest.output, ["output"], "output")];
  if (path.posix.normalize(manifest.output) === ".")
    problems.push({ path: ["output"], message: "output is the project root itself", fix: "use a folder of its own, for example deploy" });
  for (const [appName, app] of Object.entries(manifest.apps)) {
    problems.push(...pathProblem(app.cwd, ["apps", appName, "cwd"], "cwd"));
    if (app.script !== undefined) problems.push(...pathProblem(app.script, ["apps", appName, "script"], "script", app.runtime === "command"));
    app.verify?.files.forEach((file, index) => problems.push(...pathProblem(file, ["apps", appName, "verify", "files", index], "a verify file")));
    app.buildInputs?.forEach((file, index) => problems.push(...pathProblem(file, ["apps", appName, "buildInputs", index], "a build input")));
  }
  for (const [envName, environment] of Object.entries(manifest.environments)) {
    if (environment.envFile !== undefined) problems.push(...pathProblem(environment.envFile, ["environments", envName, "envFile"], "envFile"));
    if (environment.exampleFile !== undefined) problems.push(...pathProblem(environment.exampleFile, ["environments", envName, "exampleFile"], "exampleFile"));
    if (environment.pm2Home !== undefined && environment.pm2Home.startsWith("~"))
      problems.push({ path: ["environments", envName, "pm2Home"], message: 'pm2Home starts with "~", which only a shell expands', fix: "leave pm2Home out to use ~/.pm2 of the service user, or give an absolute or project-relative path" });
    if (environment.exampleFile !== undefined && environment.exampleFile === environment.envFile)
      problems.push({ path: ["environments", envName, "exampleFile"], message: "exampleFile is the env file itself", fix: "point exampleFile at the committed example (for example .env.staging.example)" });
    if (environment.requiredEnv.length > 0 && environment.envFile === undefined)
      problems.push({ path: ["environments", envName, "requiredEnv"], message: "requiredEnv needs an envFile to check", fix: `add envFile: .env.${envName}` });
    if (environment.alerts && environment.envFile === undefined)
      problems.push({ path: ["environments", envName, "alerts"], message: "alerts.webhookEnv is read from the env file, and this environment has none", fix: `add envFile: .env.${envName}` });
  }
  return problems;
};

/** The generated scripts reserve PORT, HOST; PM2_HOME and the root variable belong to deploygen. */
export const reservedEnvNames: Rule = (manifest) => {
  const rootVar = projectRootVar(manifest.project);
  const reserved = new Map([
    ["PORT", "set port on the app instead"],
    ["HOST", "set host on the app instead"],
    ["PM2_HOME", "set pm2Home on the environment instead"],
    [rootVar, "deploygen derives it from the generated files' location"],
  ]);
  const problems: RuleProblem[] = [];
  const check = (env: Record<string, string> | undefined, at: (string | number)[]) => {
    for (const key of Object.keys(env ?? {})) {
      const fix = reserved.get(key);
      if (fix) problems.push({ path: [...at, key], message: `${key} is managed by deploygen`, fix });
    }
  };
  for (const [appName, app] of Object.entries(manifest.apps)) check(app.env, ["apps", appName, "env"]);
  for (const [envName, environment] of Object.entries(manifest.environments)) {
    check(environment.env, ["environments", envName, "env"]);
    for (const [appName, override] of Object.entries(environment.apps)) check(override.env, ["environments", envName, "apps", appName, "env"]);
  }
  return problems;
};

/** Full names must fit what systemd (unit names) and PM2 carry. */
export const namesFitTargets: Rule = (manifest) => {
  const problems: RuleProblem[] = [];
  for (const envName of Object.keys(manifest.environments)) {
    for (const appName of Object.keys(manifest.apps)) {
      const full = pm2AppName(manifest.project, envName, appName);
      if (full.length > 100)
        problems.push({ path: ["apps", appName], message: `the PM2 name ${full} is longer than 100 characters`, fix: "shorten the project, environment or app name" });
    }
  }
  return problems;
};

/**
 * PM2 resolves `pm2 stop NAME` by app name first and then by namespace, across all namespaces, and
 * systemd unit names share one folder: every PM2 name and namespace, and every unit name, that the
 * environments derive must be distinct (environment "a-b" and app "c" of environment "a" would both
 * give PM2 name P-a-b-c; environment "x-health" would get the unit name of x's health check).
 */
export const generatedNamesDistinct: Rule = (manifest) => {
  const problems: RuleProblem[] = [];
  const pm2 = new Map<string, string>();
  const units = new Map<string, string>();
  const claim = (space: Map<string, string>, name: string, owner: string, at: (string | number)[]) => {
    const first = space.get(name);
    if (first === undefined) space.set(name, owner);
    else if (first !== owner)
      problems.push({ path: at, message: `${owner} and ${first} would both be named ${name}`, fix: "rename the environment or the app so that the generated names differ" });
  };
  for (const envName of Object.keys(manifest.environments).sort()) {
    claim(pm2, namespaceName(manifest.project, envName), `the PM2 namespace of environment ${envName}`, ["environments", envName]);
    for (const appName of Object.keys(manifest.apps).sort())
      claim(pm2, pm2AppName(manifest.project, envName, appName), `app ${appName} of environment ${envName} (PM2)`, ["environments", envName]);
    const environmentUnits = unitNames(manifest.project, envName);
    claim(units, `${environmentUnits.unitPrefix}@`, `the systemd unit of environment ${envName}`, ["environments", envName]);
    claim(units, `${environmentUnits.healthUnitPrefix}@`, `the health-check unit of environment ${envName}`, ["environments", envName]);
  }
  return problems;
};

/**
 * User= and Group= names that systemd takes without a warning (its strict rules: at most 31
 * characters, no "$"); "nobody" is refused by name, as systemd itself warns that it is not safe.
 */
export const systemdUserNames: Rule = (manifest) => {
  const problems: RuleProblem[] = [];
  for (const [envName, environment] of Object.entries(manifest.environments)) {
    const names: [string, string, (string | number)[]][] = [
      ["user", environment.systemd?.user ?? manifest.project, environment.systemd?.user !== undefined ? ["environments", envName, "systemd", "user"] : ["environments", envName]],
      ...(environment.systemd?.group !== undefined ? [["group", environment.systemd.group, ["environments", envName, "systemd", "group"]] as [string, string, (string | number)[]]] : []),
    ];
    for (const [what, value, at] of names) {
      const implied = what === "user" && environment.systemd?.user === undefined ? ` (the ${what} defaults to the project name)` : "";
      if (value.length > 31)
        problems.push({ path: at, message: `the service ${what} ${value}${implied} is longer than the 31 characters systemd accepts without a warning`, fix: `set environments.${envName}.systemd.${what} to a shorter name` });
      if (value.endsWith("$"))
        problems.push({ path: at, message: `the service ${what} ${value} ends in "$" (a Samba machine account), which systemd accepts only with a warning`, fix: `use a name without "$"` });
      if (value === "nobody" || value === "nogroup")
        problems.push({ path: at, message: `${value} is shared by unrelated daemons and owns nothing; systemd warns that it is not safe`, fix: `create a dedicated service ${what} (for example useradd --system ${manifest.project})` });
    }
  }
  return problems;
};

/** Unicode noncharacters (U+FDD0..U+FDEF, U+xxFFFE, U+xxFFFF): systemd refuses a unit line holding one as "not UTF-8 clean". */
export function hasNoncharacter(value: string): boolean {
  for (const char of value) {
    const code = char.codePointAt(0)!;
    if ((code >= 0xfdd0 && code <= 0xfdef) || (code & 0xfffe) === 0xfffe) return true;
  }
  return false;
}

/** Values that reach the systemd units (output through the Exec*= script paths, pm2Home through Environment=). */
export const systemdCarriesValues: Rule = (manifest) => {
  const problems: RuleProblem[] = [];
  const check = (value: string | undefined, at: (string | number)[], what: string) => {
    if (value !== undefined && hasNoncharacter(value))
      problems.push({ path: at, message: `${what} contains a Unicode noncharacter (such as U+FFFF), and systemd refuses to load a unit line that holds one`, fix: `remove it from ${what}` });
  };
  check(manifest.output, ["output"], "output");
  for (const [envName, environment] of Object.entries(manifest.environments)) check(environment.pm2Home, ["environments", envName, "pm2Home"], "pm2Home");
  return problems;
};

/** A lone UTF-16 surrogate (possible through a "\ud800" escape in JSON or YAML) has no UTF-8 form. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Checks of the data as loaded, before the schema: zod silently drops a "__proto__" key from any
 * object (as JavaScript does), so such a key must be refused here or its value would vanish
 * without a word; and a string must be well-formed Unicode to be written to a UTF-8 file unchanged.
 */
export function rawDataProblems(data: unknown, at: (string | number)[] = []): RuleProblem[] {
  if (typeof data === "string")
    return LONE_SURROGATE.test(data)
      ? [{ path: at, message: "contains a lone UTF-16 surrogate (an escape such as \\ud800), which no UTF-8 file can hold", fix: "remove the escape or write the full character" }]
      : [];
  if (Array.isArray(data)) return data.flatMap((item, index) => rawDataProblems(item, [...at, index]));
  if (data === null || typeof data !== "object") return [];
  return Object.keys(data).flatMap((key) => [
    ...(key === "__proto__"
      ? [{ path: [...at, key], message: "the key __proto__ cannot be carried (JavaScript drops it from objects, so its value would silently vanish)", fix: "rename it" }]
      : []),
    ...(LONE_SURROGATE.test(key) ? [{ path: [...at, key], message: "this key contains a lone UTF-16 surrogate, which no UTF-8 file can hold", fix: "rename it" }] : []),
    ...rawDataProblems((data as Record<string, unknown>)[key], [...at, key]),
  ]);
}

// Rules for several hosts (pm2 deploy) live in their own module; exported here with the others.
export { remoteNeedsHosts, pm2DeployCarriesRemote };

export const RULES: Rule[] = [
  atLeastOneAppAndEnvironment,
  overridesNameExistingApps,
  standardNodeEnv,
  nextjsRunsInProduction,
  noDevServerOutsideDevelopment,
  uniquePortsPerEnvironment,
  runtimeFields,
  processOptions,
  projectRelativePaths,
  reservedEnvNames,
  namesFitTargets,
  generatedNamesDistinct,
  systemdCarriesValues,
  systemdUserNames,
  remoteNeedsHosts,
  pm2DeployCarriesRemote,
];
