// The manifest (v1) as a zod schema: the single source of the manifest's types, the JSON
// Schema in schemas/manifest.schema.json and the field reference in docs/manifest.md.
// A namespace import, so that the bundle keeps only the parts of zod this file uses.
import * as z from "zod";

/** Names end up in PM2 app names, namespaces and systemd unit names: keep them to a set all three carry. */
export const NAME_PATTERN = /^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$/;
export const ENV_KEY_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** A project-relative path: no NUL, no newline, not absolute (checked by a rule with a better message). */
const SAFE_PATH_PATTERN = /^[^\0\n\r]+$/;

const article = (word: string) => (/^[aeiou]/.test(word) ? "an" : "a");
const name = (what: string) =>
  z
    .string()
    .max(40, `${article(what)} ${what} name has at most 40 characters`)
    .regex(NAME_PATTERN, `${article(what)} ${what} name is lower-case letters, digits and single dashes, starting with a letter (for example "web-api")`);

const relativePath = (what: string) =>
  z.string().min(1, `${what} must not be empty`).regex(SAFE_PATH_PATTERN, `${what} must not contain NUL or line breaks`);

const envKey = z
  .string()
  .regex(ENV_KEY_PATTERN, 'an environment variable name is letters, digits and "_", not starting with a digit (for example "API_KEY")')
  // JavaScript drops a "__proto__" key from an object literal (the ecosystem file, Node's parseEnv).
  .refine((key) => key !== "__proto__", "__proto__ cannot be carried into the ecosystem file (JavaScript drops it from objects); rename it");

const envValue = z.string().regex(/^[^\0]*$/, "an environment value must not contain a NUL byte");

export const STANDARD_NODE_ENVS = ["development", "production", "test"] as const;

// NODE_ENV is constrained in the schema itself so that editors and the JSON Schema flag it too.
// Not as `record.and(object)`: zod 4's intersection drops a key only the record rejects (an
// invalid name such as MY-VAR vanished without an error). The JSON Schema gets the NODE_ENV
// constraint through manifestJsonSchema's override instead.
const envMap = z
  .record(envKey, envValue)
  .superRefine((env, ctx) => {
    const value = env.NODE_ENV;
    if (value !== undefined && !(STANDARD_NODE_ENVS as readonly string[]).includes(value))
      ctx.addIssue({ code: "custom", path: ["NODE_ENV"], input: value, message: "NODE_ENV must be development, production or test" });
  })
  .describe("Environment variables (non-secret; committed). Keys are variable names, values strings.");

const shellCommand = z
  .string()
  .min(1, "a command must not be empty")
  .regex(/^[^\0\n\r]+$/, "a command is one line of shell (write several commands as several list items)");

export const HealthSchema = z
  .object({
    path: z
      .string()
      .regex(/^\/[^\s\0]*$/, 'a health path starts with "/" and has no spaces (for example "/health")')
      .describe("HTTP path probed at http://127.0.0.1:<port><path>; any 2xx or 3xx answer counts as healthy."),
    timeoutSeconds: z
      .number()
      .int()
      .min(1)
      .max(3600)
      .default(60)
      .describe("How long deploy, start and health-check wait for the app to answer before failing."),
  })
  .strict()
  .describe("Readiness and liveness probe of an app with a port.");

export const VerifySchema = z
  .object({
    files: z.array(relativePath("a verify file")).default([]).describe("Files that must exist after install and build, relative to the app's cwd."),
    commands: z.array(shellCommand).default([]).describe("Shell commands run in the app's cwd after build; any failure stops the deploy before anything is restarted."),
  })
  .strict()
  .describe("Checks of install and build artifacts, run before anything is (re)started.");

export const RUNTIMES = ["python", "node", "nextjs", "command"] as const;

export const AppSchema = z
  .object({
    runtime: z
      .enum(RUNTIMES)
      .describe(
        "python: script is an interpreter such as .venv/bin/python (PM2 interpreter none). node: script is a JavaScript file run by node (cluster mode with instances). nextjs: next start from node_modules/.bin/next with NODE_ENV=production, build artifact .next/BUILD_ID. command: any executable.",
      ),
    cwd: relativePath("cwd").default(".").describe("Working directory, relative to the project root (the manifest's folder)."),
    script: relativePath("script")
      .regex(/^\S+$/, "script is one path without spaces (put arguments in args: PM2 would run a script with spaces through a shell)")
      .optional()
      .describe("Executable or JavaScript file, relative to cwd. Implied for nextjs."),
    args: z.array(z.string().regex(/^[^\0]*$/, "an argument must not contain a NUL byte")).default([]).describe('Arguments; "{port}" is replaced by the app\'s port in each environment.'),
    port: z.number().int().min(1).max(65535).optional().describe("TCP port; the app gets PORT and HOST in its environment."),
    host: z
      .string()
      .regex(/^[A-Za-z0-9.:[\]-]+$/, "host is an IP address or host name (for example 127.0.0.1 or 0.0.0.0)")
      .optional()
      .describe("Address the app binds (HOST); default 127.0.0.1. Health is always probed on 127.0.0.1."),
    env: envMap.default({}),
    install: z.array(shellCommand).default([]).describe("Shell commands run in cwd, in order, on every deploy (for example npm ci, uv sync --frozen)."),
    build: z.array(shellCommand).default([]).describe("Shell commands run in cwd after install (for example npm run build)."),
    buildInputs: z
      .array(relativePath("a build input"))
      .optional()
      .describe(
        "Files the build reads, relative to cwd: paths (a folder means everything in it) or patterns as in find -path (\"*\" also matches \"/\"). The deploy skips the build while these, the build commands and the dependency files are unchanged. Default: everything in cwd except dot-folders (.next, .git, .venv...), node_modules, logs and __pycache__.",
      ),
    verify: VerifySchema.optional(),
    health: HealthSchema.optional(),
    instances: z.number().int().min(1).max(64).optional().describe("node and nextjs only: run this many workers in PM2 cluster mode (zero-downtime reload)."),
    stopTimeoutSeconds: z
      .number()
      .int()
      .min(1)
      .max(600)
      .default(10)
      .describe("Grace period between the stop signal and SIGKILL (PM2 kill_timeout)."),
  })
  .strict();

/** Per-environment overrides of app fields. */
export const AppOverrideSchema = z
  .object({
    port: AppSchema.shape.port,
    host: AppSchema.shape.host,
    args: z.array(z.string().regex(/^[^\0]*$/, "an argument must not contain a NUL byte")).optional().describe("Replaces the app's args in this environment."),
    env: envMap.optional().describe("Merged over the app's env in this environment."),
    instances: AppSchema.shape.instances,
    health: HealthSchema.optional(),
    stopTimeoutSeconds: z.number().int().min(1).max(600).optional(),
  })
  .strict()
  .describe("Fields of an app that differ in this environment.");

export const SystemdSchema = z
  .object({
    user: z
      .string()
      .regex(/^[a-z_][a-z0-9_-]*\$?$/, 'a user name is lower-case letters, digits, "_" and "-" (for example "codeframe")')
      .max(32)
      .describe("User= of the unit: the service user that owns the PM2 daemon. Default: the project name."),
    group: z
      .string()
      .regex(/^[a-z_][a-z0-9_-]*\$?$/, 'a group name is lower-case letters, digits, "_" and "-"')
      .max(32)
      .optional()
      .describe("Group= of the unit."),
  })
  .strict()
  .describe("systemd unit settings.");

export const AlertsSchema = z
  .object({
    webhookEnv: envKey.describe("Name of a variable in the env file that holds the webhook URL the health check POSTs to on failure and on recovery."),
  })
  .strict()
  .describe("Alerting from the health check.");

export const EnvironmentSchema = z
  .object({
    envFile: relativePath("envFile").optional().describe("Env file read at deploy and run time on the host (never copied, never sourced), relative to the project root."),
    exampleFile: relativePath("exampleFile").optional().describe("Committed example of the env file; a required value equal to the example's counts as unset."),
    requiredEnv: z.array(envKey).default([]).describe("Keys the env file must set to a non-empty, non-example value."),
    env: envMap.default({}),
    apps: z.record(name("app"), AppOverrideSchema).default({}).describe("Per-environment overrides of app fields, by app name."),
    systemd: SystemdSchema.partial({ user: true }).optional(),
    pm2Home: relativePath("pm2Home")
      .optional()
      .describe("PM2_HOME for scripts and the unit: relative to the project root, or absolute. Default: ~/.pm2 of the service user."),
    alerts: AlertsSchema.optional(),
    healthIntervalSeconds: z
      .number()
      .int()
      .min(10)
      .max(86400)
      .default(60)
      .describe("How often the generated systemd timer runs the health check."),
  })
  .strict();

export const ManifestSchema = z
  .object({
    $schema: z.string().optional().describe("JSON Schema reference for editors; ignored."),
    version: z.literal(1).describe("Manifest format version; always 1."),
    project: name("project").describe("Project name: prefix of every generated name (PM2 apps, namespace, unit)."),
    output: relativePath("output").default("deploy").describe("Folder for generated files, relative to the manifest's folder."),
    apps: z.record(name("app"), AppSchema).describe("Apps by name (lower-case letters, digits, dashes)."),
    environments: z.record(name("environment"), EnvironmentSchema).describe("Environments by name; files are generated for each."),
  })
  .strict();

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
