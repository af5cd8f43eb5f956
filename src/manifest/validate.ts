// Pure validation: data in, a typed manifest or located problems out.
import type * as z from "zod/mini";
import { ManifestSchema, AppSchema, AppOverrideSchema, EnvironmentSchema, HealthSchema, VerifySchema, SystemdSchema, AlertsSchema, type Manifest } from "./schema.js";
import { RULES, rawDataProblems } from "./rules.js";
import { ManifestError, type ManifestProblem } from "../errors.js";
import { projectEnvNameVar } from "../names.js";
import type { LoadedManifest } from "./load.js";

type Locate = LoadedManifest["locate"];

export function validateManifest(loaded: Pick<LoadedManifest, "data" | "displayName" | "locate">): Manifest {
  const raw = rawDataProblems(loaded.data);
  if (raw.length > 0)
    throw new ManifestError(raw.map((problem) => ({ file: loaded.displayName, path: problem.path, position: loaded.locate(problem.path), message: problem.message, fix: problem.fix })));
  // jitless: zod's compiled fast path costs more to generate than it saves for one manifest per run.
  const parsed = ManifestSchema.safeParse(loaded.data, { jitless: true });
  if (!parsed.success) throw new ManifestError(zodProblems(parsed.error, loaded.displayName, loaded.locate, loaded.data));
  // A rule that checks an app field in each environment finds the same problem once per environment.
  const seen = new Set<string>();
  const unique = RULES.flatMap((rule) => rule(parsed.data)).filter((problem) => {
    const key = `${problem.path.join("\0")}\0${problem.message}`;
    return !seen.has(key) && seen.add(key) !== undefined;
  });
  const problems = unique.map(
    (problem): ManifestProblem => ({ file: loaded.displayName, path: problem.path, position: loaded.locate(problem.path), message: problem.message, fix: problem.fix }),
  );
  if (problems.length > 0) throw new ManifestError(problems);
  return parsed.data;
}

function zodProblems(error: z.core.$ZodError, file: string, locate: Locate, data: unknown): ManifestProblem[] {
  const projectVar = projectEnvSuggestion(data);
  return error.issues.flatMap((issue): ManifestProblem[] => {
    const path = issue.path.filter((part): part is string | number => typeof part !== "symbol");
    if (issue.code === "unrecognized_keys")
      // One problem per unknown key, located at the key itself (the typo), not at its parent.
      return issue.keys.map((key) => {
        const suggestion = closestField(key);
        return {
          file,
          path: [...path, key],
          position: locate([...path, key]),
          message: `unknown field "${key}"`,
          fix: suggestion
            ? `did you mean "${suggestion}"? (\`deploygen schema\` prints every field)`
            : "remove it, or check its spelling (`deploygen schema` prints every field)",
        };
      });
    const { present, value } = valueAt(data, path);
    const { message, fix } = explainIssue(issue, path, projectVar, value, present);
    return [{ file, path, position: locate(path), message, fix }];
  });
}

function projectEnvSuggestion(data: unknown): string {
  const project = typeof data === "object" && data !== null && "project" in data ? String((data as { project: unknown }).project) : "PROJECT";
  return projectEnvNameVar(project);
}

function explainIssue(issue: z.core.$ZodIssue, path: (string | number)[], projectVar: string, value: unknown, present: boolean): { message: string; fix: string } {
  const last = path[path.length - 1];
  const field = typeof last === "number" ? `${String(path[path.length - 2] ?? "item")}[${last}]` : String(last ?? "the manifest");
  if (last === "NODE_ENV")
    return { message: "NODE_ENV must be development, production or test (Node.js and Next.js know no other value)", fix: `set NODE_ENV: production and put the deployment name in a project variable such as ${projectVar}` };
  switch (issue.code) {
    case "invalid_key": {
      const inner = issue.issues[0]?.message ?? issue.message;
      return { message: `"${String(last)}" is not a valid name: ${inner}`, fix: `rename it${nameSuggestion(String(last))}` };
    }
    case "unrecognized_keys":
      return { message: `unknown field${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((key) => `"${key}"`).join(", ")}`, fix: "remove it, or check its spelling (`deploygen schema` prints every field)" };
    case "invalid_type": {
      const expected = issue.expected === "int" ? "whole number" : issue.expected === "array" ? "list" : issue.expected === "record" ? "object" : issue.expected;
      if (!present) return { message: `missing required field (expected ${article(expected)} ${expected})`, fix: `add ${field}` };
      if (expected === "number" && typeof value === "string" && value.trim() !== "" && !Number.isNaN(Number(value)))
        return { message: `expected a number, got the string ${JSON.stringify(value)}`, fix: `write the number without quotes (${field}: ${value.trim()})` };
      if (value === null) return { message: `expected ${article(expected)} ${expected}, got an empty value`, fix: `give ${field} a value, or remove it` };
      return { message: `expected ${article(expected)} ${expected}, got ${describeValue(value)}`, fix: `write ${field} as ${article(expected)} ${expected}` };
    }
    case "invalid_value":
      if (issue.values.length === 1) return { message: `must be ${JSON.stringify(issue.values[0])}`, fix: `write ${field}: ${String(issue.values[0])}` };
      return { message: `must be one of ${issue.values.map((option) => JSON.stringify(option)).join(", ")}`, fix: `use one of ${issue.values.map(String).join(", ")}` };
    case "too_small":
    case "too_big": {
      const bound = issue.code === "too_big" ? issue.maximum : issue.minimum;
      const relation = issue.code === "too_big" ? "at most" : "at least";
      if (issue.origin === "string" && bound === 1 && issue.code === "too_small") return { message: issue.message, fix: `give ${field} a value, or remove it` };
      const unit = issue.origin === "string" ? " characters" : issue.origin === "array" ? " items" : "";
      return { message: `must be ${relation} ${String(bound)}${unit}`, fix: `use ${issue.origin === "number" ? "a value" : issue.origin === "string" ? "a shorter or longer value" : "fewer or more items"} within that limit` };
    }
    case "invalid_format":
      return { message: issue.message, fix: formatFix(path, field, value) };
    case "invalid_union":
      if (last === "instances")
        return {
          message: `instances is a whole number of workers from 1 to 64, max (one per CPU) or -N (one per CPU but N); got ${describeValue(value)}`,
          fix: typeof value === "string" && /^\s*-?\d+\s*$/.test(value) ? `write the number without quotes (instances: ${value.trim()})` : "write instances: 2, or instances: max",
        };
      return { message: issue.message, fix: `correct ${field} (\`deploygen schema\` describes every field)` };
    default:
      return { message: issue.message, fix: `correct ${field} (\`deploygen schema\` describes every field)` };
  }
}

/** How to repair a value that fails a pattern, by the field it is in. */
function formatFix(path: (string | number)[], field: string, value: unknown): string {
  const named = path.filter((part): part is string => typeof part === "string");
  const key = named[named.length - 1];
  const text = typeof value === "string" ? value : "";
  if (/[\0]/.test(text)) return `remove the NUL byte from ${field}`;
  if (key === "install" || key === "build" || key === "commands") return "write each line as its own list item";
  if (/[\n\r]/.test(text)) return `remove the line break from ${field}`;
  if (key === "project") return `rename it${nameSuggestion(text)}`;
  if (key === "path") return `start the path with "/", for example "/health"`;
  if (key === "script") return "give only the executable in script and move its arguments to args";
  if (key === "user" || key === "group") return "use the login name of the service account, for example the project name";
  if (key === "host") return "use an IP address such as 127.0.0.1 or 0.0.0.0";
  if (key === "maxMemory") {
    const size = /^\s*(\d+(?:\.\d+)?)\s*([KMG])i?B?\s*$/i.exec(text);
    const megabytes = size ? Math.round(Number(size[1]) * { K: 1 / 1024, M: 1, G: 1024 }[size[2]!.toUpperCase() as "K" | "M" | "G"]) : undefined;
    return megabytes !== undefined && megabytes >= 1 ? `write maxMemory: ${megabytes}M` : "write a whole number with K, M or G, for example maxMemory: 512M";
  }
  return `correct ${field} as described`;
}

/** ' (for example "web-api")' for a name that a simple normalisation turns valid. */
function nameSuggestion(name: string): string {
  const candidate = name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^[^a-z]+|-+$/g, "");
  return candidate && candidate !== name ? ` (for example "${candidate}")` : "";
}

function article(word: string): string {
  return /^[aeiou]/.test(word) ? "an" : "a";
}

function valueAt(data: unknown, path: (string | number)[]): { present: boolean; value: unknown } {
  let current: unknown = data;
  for (const part of path) {
    if (typeof current !== "object" || current === null || !Object.prototype.hasOwnProperty.call(current, part)) return { present: false, value: undefined };
    current = (current as Record<string | number, unknown>)[part];
  }
  return { present: current !== undefined, value: current };
}

function describeValue(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  return typeof value === "string" ? `the string ${JSON.stringify(value)}` : typeof value;
}

const FIELD_NAMES = [
  ...new Set(
    [ManifestSchema, AppSchema, AppOverrideSchema, EnvironmentSchema, HealthSchema, VerifySchema, SystemdSchema, AlertsSchema].flatMap((schema) => Object.keys(schema.shape)),
  ),
];

/** The known field nearest to a typo (at most two edits, ignoring case), if any. */
function closestField(key: string): string | undefined {
  let best: { field: string; distance: number } | undefined;
  for (const field of FIELD_NAMES) {
    const distance = editDistance(key.toLowerCase(), field.toLowerCase());
    if (distance <= Math.min(2, Math.floor(field.length / 3)) && (!best || distance < best.distance)) best = { field, distance };
  }
  return best?.field;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++)
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    previous = current;
  }
  return previous[b.length] ?? 0;
}
