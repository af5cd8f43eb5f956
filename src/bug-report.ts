// What an internal error prints. In the bundled CLI (dist/cli.cjs, minified) a stack frame's
// position means nothing to a reader, so frames in the bundle are translated back to src/ through
// dist/cli.cjs.map. Best effort: without the map the stack is printed as it is.
import { readFileSync } from "node:fs";
import { SourceMap } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The bundle this module runs in (dist/cli.cjs; under src/ there is none). Frames can name another
 * path: V8's code cache keeps the file name of the build, so an installed copy's frames name the
 * folder it was packed in.
 */
const RUNNING_BUNDLE = path.join(path.dirname(fileURLToPath(import.meta.url)), "cli.cjs");

const BUNDLE_FRAME = /([^\s()]*[\\/]cli\.cjs):(\d+):(\d+)/g;

/** error's stack with positions in dist/cli.cjs replaced by the src/ file, line and column they came from. */
export function sourceMappedStack(error: unknown): string {
  const stack = error instanceof Error ? (error.stack ?? String(error)) : String(error);
  const maps = new Map<string, SourceMap | undefined>();
  const mapOf = (bundle: string) => {
    if (!maps.has(bundle)) {
      try {
        maps.set(bundle, new SourceMap(JSON.parse(readFileSync(`${bundle}.map`, "utf8"))));
      } catch {
        maps.set(bundle, undefined);
      }
    }
    return maps.get(bundle);
  };
  return stack.replace(BUNDLE_FRAME, (frame: string, framed: string, line: string, column: string) => {
    const bundle = mapOf(RUNNING_BUNDLE) !== undefined ? RUNNING_BUNDLE : framed;
    const entry = mapOf(bundle)?.findEntry(Number(line) - 1, Number(column) - 1) as { originalSource?: string; originalLine?: number; originalColumn?: number } | undefined;
    if (entry?.originalSource === undefined || entry.originalLine === undefined || entry.originalColumn === undefined) return frame;
    const source = path.resolve(path.dirname(bundle), entry.originalSource);
    return `${source}:${entry.originalLine + 1}:${entry.originalColumn + 1}`;
  });
}
