// Known failures carry what went wrong and how to fix it; anything else is a bug.

export interface SourcePosition {
  line: number;
  column: number;
}

/** One problem in a manifest: where (file, manifest path, line:column) and what to do. */
export interface ManifestProblem {
  file: string;
  path: (string | number)[];
  position?: SourcePosition;
  message: string;
  fix?: string;
}

/** A user mistake: printed without a stack trace, exit code 1 (or 2 for usage). */
export class UserError extends Error {
  override readonly name = "UserError";
  constructor(
    message: string,
    readonly fix?: string,
    readonly exitCode: 1 | 2 = 1,
  ) {
    super(message);
  }
}

export class ManifestError extends UserError {
  constructor(readonly problems: ManifestProblem[]) {
    super(problems.map(formatProblem).join("\n"), undefined, 1);
  }
}

export function formatManifestPath(path: (string | number)[]): string {
  if (path.length === 0) return "(manifest)";
  return path
    .map((part, index) => (typeof part === "number" ? `[${part}]` : index === 0 ? part : `.${part}`))
    .join("");
}

export function formatProblem(problem: ManifestProblem): string {
  const where = problem.position ? `${problem.file}:${problem.position.line}:${problem.position.column}` : problem.file;
  const fix = problem.fix ? ` Fix: ${problem.fix}` : "";
  // Only the sentence ends get a period: messages quote paths such as ../x verbatim.
  return `${where}: ${formatManifestPath(problem.path)}: ${sentence(problem.message)}${fix}`;
}

function sentence(text: string): string {
  return /[.!?]$/.test(text) ? text : `${text}.`;
}
