// The manifest (v1) as a zod schema: the single source of the manifest's types, the JSON
// Schema in schemas/manifest.schema.json and the field reference in docs/manifest.md.
// zod/mini (zod 4's functional API): the same core, parser and JSON Schema as the chained API,
// but a schema is built without a method-carrying wrapper per step, which makes building this
// one at start-up about three times cheaper (docs/performance.md).
import * as z from "zod/mini";
import en from "zod/v4/locales/en.js";
import { HostsSchema, RemoteSchema } from "./remote-schema.js";

// zod/mini leaves the locale to the program; these are zod's English messages, as the full API sets.
z.config(en());

/** A copy of schema carrying description (in the JSON Schema and docs/manifest.md); the original stays as it was. */
function described<T extends z.ZodMiniType>(schema: T, description: string): T {
  const copy = schema.clone() as T;
  z.globalRegistry.add(copy, { description });
  return copy;
}

/** A whole number within [min, max]. */
const wholeNumber = (min: number, max: number) => z.number().check(z.int(), z.gte(min), z.lte(max));

/** Names end up in PM2 app names, namespaces and systemd unit names: keep them to a set all three carry. */
export const NAME_PATTERN = /^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$/;
export const ENV_KEY_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** A project-relative path: no NUL, no newline, not absolute (checked by a rule with a better message). */
const SAFE_PATH_PATTERN = /^[^\0\n\r]+$/;

const article = (word: string) => (/^[aeiou]/.test(word) ? "an" : "a");
const name = (what: string) =>
  z
    .string()
    .check(
      z.maxLength(40, `${article(what)} ${what} name has at most 40 characters`),
      z.regex(NAME_PATTERN, `${article(what)} ${what} name is lower-case letters, digits and single dashes, starting with a letter (for example "web-api")`),
    );

const relativePath = (what: string) => z.string().check(z.minLength(1, `${what} must not be empty`), z.regex(SAFE_PATH_PATTERN, `${what} must not contain NUL or line breaks`));

const envKey = z.string().check(
  z.regex(ENV_KEY_PATTERN, 'an environment variable name is letters, digits and "_", not starting with a digit (for example "API_KEY")'),
  // JavaScript drops a "__proto__" key from an object literal (the ecosystem file, Node's parseEnv).
  z.refine((key) => key !== "__proto__", "__proto__ cannot be carried into the ecosystem file (JavaScript drops it from objects); rename it"),
);

const envValue = z.string().check(z.regex(/^[^\0]*$/, "an environment value must not contain a NUL byte"));

export const STANDARD_NODE_ENVS = ["development", "production", "test"] as const;

// NODE_ENV is constrained in the schema itself so that editors and the JSON Schema flag it too.
// Not as an intersection of the record with an object: zod 4's intersection drops a key only the
// record rejects (an invalid name such as MY-VAR vanished without an error). The JSON Schema gets
// the NODE_ENV constraint through manifestJsonSchema's override instead.
const envMap = described(
  z.record(envKey, envValue).check(
    z.superRefine((env, ctx) => {
      const value = env.NODE_ENV;
      if (value !== undefined && !(STANDARD_NODE_ENVS as readonly string[]).includes(value))
        ctx.addIssue({ code: "custom", path: ["NODE_ENV"], input: value, message: "NODE_ENV must be development, production or test" });
    }),
  ),
  "Environment variables (non-secret; committed). Keys are variable names, values strings.",
);

const shellCommand = z
  .string()
  .check(z.minLength(1, "a command must not be empty"), z.regex(/^[^\0\n\r]+$/, "a command is one line of shell (write several commands as several list items)"));

const argument = z.string().check(z.regex(/^[^\0]*$/, "an argument must not contain a NUL byte"));

export const HealthSchema = described(
  z.strictObject({
    path: described(
      z.string().check(z.regex(/^\/[^\s\0]*$/, 'a health path starts with "/" and has no spaces (for example "/health")')),
      "HTTP path probed at http://127.0.0.1:<port><path>; any 2xx or 3xx answer counts as healthy.",
    ),
    timeoutSeconds: described(z._default(wholeNumber(1, 3600), 60), "How long deploy, start and health-check wait for the app to answer before failing."),
  }),
  "Readiness and liveness probe of an app with a port.",
);

export const VerifySchema = described(
  z.strictObject({
    files: described(z._default(z.array(relativePath("a verify file")), []), "Files that must exist after install and build, relative to the app's cwd."),
    commands: described(z._default(z.array(shellCommand), []), "Shell commands run in the app's cwd after build; any failure stops the deploy before anything is restarted."),
  }),
  "Checks of install and build artifacts, run before anything is (re)started.",
);

export const RUNTIMES = ["python", "node", "nextjs", "command"] as const;

/** A memory size as PM2's max_memory_restart takes it: whole number and unit. */
export const MEMORY_SIZE_PATTERN = /^[1-9][0-9]*[KMG]$/;

// Process options of PM2 that real ecosystem files set, as app fields (also overridable per environment).
const instancesField = described(
  z.optional(z.union([wholeNumber(-64, 64), z.literal("max")])),
  "node and nextjs only: run this many workers in PM2 cluster mode (zero-downtime reload). max: one per CPU of the host; a negative number -N: one per CPU but N (at least one).",
);
const execModeField = described(
  z.optional(z.enum(["fork", "cluster"])),
  "PM2 exec mode. Default: cluster for a node or nextjs app with instances other than 1, else fork. cluster with one instance keeps reloads zero-downtime (PM2 starts the new worker before stopping the old one).",
);
const maxMemoryField = described(
  z.optional(z.string().check(z.regex(MEMORY_SIZE_PATTERN, "a memory size is a whole number followed by K, M or G (for example 512M or 1G)"))),
  "Restart the app gracefully when its resident memory exceeds this size (PM2 max_memory_restart; PM2 checks every 30 s). A whole number with K, M or G, for example 512M or 1G.",
);
const maxRestartsField = described(
  z.optional(wholeNumber(0, 100000)),
  "How many restarts in a row of an app that keeps dying sooner than minUptimeSeconds before PM2 gives up and leaves it errored (PM2 max_restarts; PM2's default 16).",
);
const minUptimeField = described(
  z.optional(wholeNumber(1, 86400)),
  "An app that exits sooner than this after starting counts as an unstable restart, towards maxRestarts (PM2 min_uptime; PM2's default 1 s).",
);
const restartDelayField = described(
  z.optional(z.number().check(z.gte(0), z.lte(3600))),
  "Fixed wait before PM2 restarts a crashed app, in seconds (PM2 restart_delay). Default: PM2's exponential back-off from 0.1 s up to 15 s.",
);
const nodeArgsField = described(
  z.optional(z.array(argument)),
  'node and nextjs only: options for node itself, before the script (PM2 node_args), for example ["--max-old-space-size=4096", "--enable-source-maps"].',
);
const interpreterArgsField = described(
  z.optional(z.array(argument)),
  'python only: options for the Python interpreter, placed before args (for example ["-u", "-X", "utf8"]).',
);
const logDateFormatField = described(
  z.optional(z.string().check(z.minLength(1, "logDateFormat must not be empty"), z.regex(/^[^\0\n\r]*$/, "logDateFormat is one line"))),
  'Timestamp format at the start of each log line, in Day.js tokens (PM2 log_date_format), for example "YYYY-MM-DD HH:mm:ss Z". Default: YYYY-MM-DDTHH:mm:ss (PM2 time).',
);
const waitReadyField = described(
  z.optional(z.boolean()),
  "node only: PM2 counts the app online when it calls process.send('ready') rather than as soon as it is started, waiting at most health.timeoutSeconds (PM2 wait_ready and listen_timeout). deploy still waits for the health URL.",
);
const cronRestartField = described(
  z.optional(z.string().check(z.minLength(1, "cronRestart must not be empty"))),
  'Restart the app on a schedule: a cron expression of 5 fields (minute hour day month weekday) or 6 (with seconds first), in the host\'s time zone (PM2 cron_restart), for example "0 4 * * *".',
);

/** PM2 process options: app fields that each environment may override as well. */
const PROCESS_OPTION_FIELDS = {
  maxMemory: maxMemoryField,
  maxRestarts: maxRestartsField,
  minUptimeSeconds: minUptimeField,
  restartDelaySeconds: restartDelayField,
  nodeArgs: nodeArgsField,
  interpreterArgs: interpreterArgsField,
  logDateFormat: logDateFormatField,
  waitReady: waitReadyField,
  cronRestart: cronRestartField,
};

export const AppSchema = z.strictObject({
  runtime: described(
    z.enum(RUNTIMES),
    "python: script is an interpreter such as .venv/bin/python (PM2 interpreter none). node: script is a JavaScript file run by node (cluster mode with instances). nextjs: next start from node_modules/.bin/next with NODE_ENV=production, build artifact .next/BUILD_ID. command: any executable.",
  ),
  cwd: described(z._default(relativePath("cwd"), "."), "Working directory, relative to the project root (the manifest's folder)."),
  script: described(
    z.optional(relativePath("script").check(z.regex(/^\S+$/, "script is one path without spaces (put arguments in args: PM2 would run a script with spaces through a shell)"))),
    "Executable or JavaScript file, relative to cwd. Implied for nextjs.",
  ),
  args: described(z._default(z.array(argument), []), 'Arguments; "{port}" is replaced by the app\'s port in each environment.'),
  port: described(z.optional(wholeNumber(1, 65535)), "TCP port; the app gets PORT and HOST in its environment."),
  host: described(
    z.optional(z.string().check(z.regex(/^[A-Za-z0-9.:[\]-]+$/, "host is an IP address or host name (for example 127.0.0.1 or 0.0.0.0)"))),
    "Address the app binds (HOST); default 127.0.0.1. Health is always probed on 127.0.0.1.",
  ),
  env: z._default(envMap, {}),
  install: described(z._default(z.array(shellCommand), []), "Shell commands run in cwd, in order, on every deploy (for example npm ci, uv sync --frozen)."),
  build: described(z._default(z.array(shellCommand), []), "Shell commands run in cwd after install (for example npm run build)."),
  buildInputs: described(
    z.optional(z.array(relativePath("a build input"))),
    "Files the build reads, relative to cwd: paths (a folder means everything in it) or patterns as in find -path (\"*\" also matches \"/\"). The deploy skips the build while these, the build commands and the dependency files are unchanged. Default: everything in cwd except dot-folders (.next, .git, .venv...), node_modules, logs and __pycache__.",
  ),
  buildOutputs: described(
    z.optional(z.array(relativePath("a build output"))),
    "What the build writes, relative to cwd (for example dist). Deploying in place, these are kept aside during a build and put back if it fails or is interrupted; with releases, a release whose build inputs are unchanged reuses them from the previous release. Implied for nextjs: .next.",
  ),
  verify: z.optional(VerifySchema),
  health: z.optional(HealthSchema),
  instances: instancesField,
  execMode: execModeField,
  stopTimeoutSeconds: described(z._default(wholeNumber(1, 600), 10), "Grace period between the stop signal and SIGKILL (PM2 kill_timeout)."),
  ...PROCESS_OPTION_FIELDS,
});

/** Per-environment overrides of app fields. */
export const AppOverrideSchema = described(
  z.strictObject({
    port: AppSchema.shape.port,
    host: AppSchema.shape.host,
    args: described(z.optional(z.array(argument)), "Replaces the app's args in this environment."),
    env: described(z.optional(envMap), "Merged over the app's env in this environment."),
    instances: AppSchema.shape.instances,
    health: z.optional(HealthSchema),
    stopTimeoutSeconds: z.optional(wholeNumber(1, 600)),
    execMode: execModeField,
    ...PROCESS_OPTION_FIELDS,
  }),
  "Fields of an app that differ in this environment.",
);

export const SystemdSchema = described(
  z.strictObject({
    user: described(
      z.string().check(z.regex(/^[a-z_][a-z0-9_-]*\$?$/, 'a user name is lower-case letters, digits, "_" and "-" (for example "codeframe")'), z.maxLength(32)),
      "User= of the unit: the service user that owns the PM2 daemon. Default: the project name.",
    ),
    group: described(z.optional(z.string().check(z.regex(/^[a-z_][a-z0-9_-]*\$?$/, 'a group name is lower-case letters, digits, "_" and "-"'), z.maxLength(32))), "Group= of the unit."),
  }),
  "systemd unit settings.",
);

export const AlertsSchema = described(
  z.strictObject({
    webhookEnv: described(envKey, "Name of a variable in the env file that holds the webhook URL the health check POSTs to on failure and on recovery."),
  }),
  "Alerting from the health check.",
);

export const ReleasesSchema = described(
  z.strictObject({
    keep: described(z._default(wholeNumber(2, 100), 5), "How many releases to keep on the host (the live one and the rollback target are never removed)."),
    shared: described(
      z._default(z.array(relativePath("a shared path")), []),
      "Project-relative folders every release links to instead of copying (uploads, data). The env file and logs/ are always outside releases.",
    ),
  }),
  "Deploy into immutable release folders with an atomic switch and automatic rollback. Without it, the checkout is deployed in place.",
);

/** logrotate's size syntax: bytes, or a whole number of k, M or G. */
export const LOG_SIZE_PATTERN = /^[1-9][0-9]{0,8}[kMG]?$/;

export const LogsSchema = described(
  z.strictObject({
    maxSize: described(
      z._default(z.string().check(z.regex(LOG_SIZE_PATTERN, 'maxSize is a size as logrotate takes it: a whole number with k, M or G (for example "10M")')), "10M"),
      'Rotate a log file once it is larger than this, at the next run of logrotate (daily on Debian): a whole number with k, M or G. Default "10M": a day of busy logging of a small app, small enough to open in an editor.',
    ),
    keep: described(
      z._default(wholeNumber(1, 365), 7),
      "How many rotated files to keep per log (older ones are deleted; all but the newest are compressed). Default 7: with the daily timer, about a week of history at the most.",
    ),
  }),
  "Rotation of <root>/logs (PM2's out and error logs of every app) by the generated logrotate/<project>-<environment>.conf, which install-systemd installs into /etc/logrotate.d.",
);

export const EnvironmentSchema = z.strictObject({
  envFile: described(z.optional(relativePath("envFile")), "Env file read at deploy and run time on the host (never copied, never sourced), relative to the project root."),
  exampleFile: described(z.optional(relativePath("exampleFile")), "Committed example of the env file; a required value equal to the example's counts as unset."),
  requiredEnv: described(z._default(z.array(envKey), []), "Keys the env file must set to a non-empty, non-example value."),
  env: z._default(envMap, {}),
  apps: described(z._default(z.record(name("app"), AppOverrideSchema), {}), "Per-environment overrides of app fields, by app name."),
  systemd: z.optional(z.partial(SystemdSchema, { user: true })),
  pm2Home: described(z.optional(relativePath("pm2Home")), "PM2_HOME for scripts and the unit: relative to the project root, or absolute. Default: ~/.pm2 of the service user."),
  alerts: z.optional(AlertsSchema),
  healthIntervalSeconds: described(z._default(wholeNumber(10, 86400), 60), "How often the generated systemd timer runs the health check."),
  releases: z.optional(ReleasesSchema),
  minFreeDiskMB: described(
    z._default(wholeNumber(0, 1048576), 1024),
    "Pre-flight refuses to deploy with less free disk (MB) where the state folder lives. Default 1024: an npm install plus a Next.js build write a few hundred MB, and a deploy that fills the disk fails halfway.",
  ),
  // zod 4 returns a default as it is (not parsed): it carries both fields.
  logs: z._default(LogsSchema, () => ({ maxSize: "10M", keep: 7 })),
  hosts: z.optional(HostsSchema),
  remote: z.optional(RemoteSchema),
});

export const ManifestSchema = z.strictObject({
  $schema: described(z.optional(z.string()), "JSON Schema reference for editors; ignored."),
  version: described(z.literal(1), "Manifest format version; always 1."),
  project: described(name("project"), "Project name: prefix of every generated name (PM2 apps, namespace, unit)."),
  output: described(z._default(relativePath("output"), "deploy"), "Folder for generated files, relative to the manifest's folder."),
  apps: described(z.record(name("app"), AppSchema), "Apps by name (lower-case letters, digits, dashes)."),
  environments: described(z.record(name("environment"), EnvironmentSchema), "Environments by name; files are generated for each."),
});

export type Manifest = z.output<typeof ManifestSchema>;
export type ManifestInput = z.input<typeof ManifestSchema>;
export type App = z.output<typeof AppSchema>;
export type AppOverride = z.output<typeof AppOverrideSchema>;
export type Environment = z.output<typeof EnvironmentSchema>;
export type Runtime = (typeof RUNTIMES)[number];

/** Record keys are checked by rules (zod's record key errors carry no useful path), with this shared check. */
export function nameProblem(value: string, what: string): string | undefined {
  const parsed = name(what).safeParse(value);
  return parsed.success ? undefined : parsed.error.issues[0]?.message;
}

export function manifestJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(ManifestSchema, {
    io: "input",
    target: "draft-07",
    override: ({ zodSchema, jsonSchema }) => {
      if (zodSchema === envMap) jsonSchema.properties = { NODE_ENV: { type: "string", enum: [...STANDARD_NODE_ENVS] } };
    },
  }) as Record<string, unknown>;
}
