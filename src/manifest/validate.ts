// Pure validation: data in, a typed manifest or located problems out.
import type { z } from "zod";
import { ManifestSchema, type Manifest } from "./schema.js";
import { RULES } from "./rules.js";
import { ManifestError, type ManifestProblem } from "../errors.js";
import type { LoadedManifest } from "./load.js";

type Locate = LoadedManifest["locate"];

export function validateManifest(loaded: Pick<LoadedManifest, "data" | "displayName" | "locate">): Manifest {
  const parsed = ManifestSchema.safeParse(loaded.data);
  if (!parsed.success) throw new ManifestError(zodProblems(parsed.error, loaded.displayName, loaded.locate, loaded.data));
  const problems = RULES.flatMap((rule) => rule(parsed.data)).map(
    (problem): ManifestProblem => ({ file: loaded.displayName, path: problem.path, position: loaded.locate(problem.path), message: problem.message, fix: problem.fix }),
  );
  if (problems.length > 0) throw new ManifestError(problems);
  return parsed.data;
}

function zodProblems(error: z.ZodError, file: string, locate: Locate, data: unknown): ManifestProblem[] {
  const projectVar = projectEnvSuggestion(data);
  return error.issues.map((issue) => {
    const path = issue.path.filter((part): part is string | number => typeof part !== "symbol");
    const { message, fix } = explainIssue(issue, path, projectVar);
    return { file, path, position: locate(path), message, fix };
  });
}

function projectEnvSuggestion(data: unknown): string {
  const project = typeof data === "object" && data !== null && "project" in data ? String((data as { project: unknown }).project) : "PROJECT";
  return `${project.toUpperCase().replace(/[^A-Z0-9]+/g, "_")}_ENV`;
}

function explainIssue(issue: z.core.$ZodIssue, path: (string | number)[], projectVar: string): { message: string; fix?: string } {
  const last = path[path.length - 1];
  if (last === "NODE_ENV")
    return { message: "NODE_ENV must be development, production or test (Node.js and Next.js know no other value)", fix: `set NODE_ENV: production and put the deployment name in a project variable such as ${projectVar}` };
  switch (issue.code) {
    case "invalid_key": {
      const inner = issue.issues[0]?.message ?? issue.message;
      return { message: `"${String(last)}" is not a valid name: ${inner}`, fix: "rename it" };
    }
    case "unrecognized_keys":
      return { message: `unknown field${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((key) => `"${key}"`).join(", ")}`, fix: "remove it or check its spelling against docs/manifest.md (`deploygen schema` prints every field)" };
    case "invalid_type":
      if (issue.input === undefined) return { message: `missing required field (expected ${issue.expected})`, fix: `add ${String(last)}` };
      return { message: `expected ${issue.expected}, got ${describeValue(issue.input)}`, fix: `write ${String(last)} as ${issue.expected === "array" ? "a list" : `a ${issue.expected}`}` };
    case "invalid_value":
      return { message: `must be ${issue.values.map((value) => JSON.stringify(value)).join(" or ")}`, fix: `use one of ${issue.values.map(String).join(", ")}` };
    default:
      return { message: issue.message };
  }
}

function describeValue(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  return typeof value === "string" ? `the string ${JSON.stringify(value)}` : typeof value;
}
