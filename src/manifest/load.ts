// Reading a manifest from disk: YAML or JSON, keeping the parsed document so that every
// later error can point at a line and column.
import { readFile } from "node:fs/promises";
import path from "node:path";
import { existsSync } from "node:fs";
import { LineCounter, parseDocument, isNode, type Document } from "yaml";
import { ManifestError, UserError, type SourcePosition } from "../errors.js";

export const DEFAULT_MANIFEST_NAMES = ["deploygen.yaml", "deploygen.yml", "deploygen.json"] as const;

export interface LoadedManifest {
  /** Absolute path of the manifest file. */
  file: string;
  /** How errors and generated headers name it: relative to the working directory at load time. */
  displayName: string;
  /** The manifest's file name only (for generated headers: they must not depend on the caller's folder). */
  baseName: string;
  data: unknown;
  locate(path: (string | number)[]): SourcePosition | undefined;
}

export function findManifest(cwd: string, explicit?: string): string {
  if (explicit) {
    const file = path.resolve(cwd, explicit);
    if (!existsSync(file)) throw new UserError(`manifest not found: ${explicit}`, "pass an existing file with -m FILE, or run `deploygen init` to write one");
    return file;
  }
  for (const candidate of DEFAULT_MANIFEST_NAMES) {
    const file = path.join(cwd, candidate);
    if (existsSync(file)) return file;
  }
  throw new UserError(
    `no manifest in ${cwd} (looked for ${DEFAULT_MANIFEST_NAMES.join(", ")})`,
    "run `deploygen init` to write a starter manifest, or pass one with -m FILE",
  );
}

export async function loadManifest(file: string, cwd = process.cwd()): Promise<LoadedManifest> {
  const text = await readFile(file, "utf8");
  const displayName = path.relative(cwd, file) || path.basename(file);
  return parseManifestText(text, file, displayName);
}

/** Pure: parse manifest text (YAML, or JSON which YAML 1.2 reads too) into data plus a position lookup. */
export function parseManifestText(text: string, file: string, displayName = file): LoadedManifest {
  const lineCounter = new LineCounter();
  const isJson = file.endsWith(".json");
  const doc: Document = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, strict: true });
  const firstError = doc.errors[0];
  if (firstError) {
    const offset = firstError.pos[0];
    const { line, col } = lineCounter.linePos(offset);
    throw new ManifestError([
      {
        file: displayName,
        path: [],
        position: { line, column: col },
        message: `${isJson ? "JSON" : "YAML"} syntax error: ${firstError.message.split("\n")[0]}`,
        fix: "correct the syntax at that position",
      },
    ]);
  }
  if (isJson) {
    try {
      JSON.parse(text);
    } catch (error) {
      throw new ManifestError([{ file: displayName, path: [], message: `JSON syntax error: ${(error as Error).message}`, fix: "correct the JSON syntax" }]);
    }
  }
  const data: unknown = doc.toJS({ maxAliasCount: 100 });
  const locate = (manifestPath: (string | number)[]): SourcePosition | undefined => {
    // Walk up until a node exists: a missing field is reported at its parent.
    for (let depth = manifestPath.length; depth >= 0; depth--) {
      const node = depth === 0 ? doc.contents : doc.getIn(manifestPath.slice(0, depth), true);
      if (isNode(node) && node.range) {
        const { line, col } = lineCounter.linePos(node.range[0]);
        // A record key that is itself the problem: point at the key, not the value.
        if (depth === manifestPath.length && depth > 0) {
          const keyPos = keyPosition(doc, manifestPath, lineCounter);
          if (keyPos) return keyPos;
        }
        return { line, column: col };
      }
    }
    return undefined;
  };
  return { file, displayName, baseName: path.basename(file), data, locate };
}

function keyPosition(doc: Document, manifestPath: (string | number)[], lineCounter: LineCounter): SourcePosition | undefined {
  const parent = manifestPath.length === 1 ? doc.contents : doc.getIn(manifestPath.slice(0, -1), true);
  const last = manifestPath[manifestPath.length - 1];
  if (!parent || typeof parent !== "object" || !("items" in parent) || !Array.isArray(parent.items)) return undefined;
  for (const item of parent.items as unknown[]) {
    if (item && typeof item === "object" && "key" in item) {
      const key = (item as { key: unknown }).key;
      if (isNode(key) && key.range && String((key as { value?: unknown }).value) === String(last)) {
        const { line, col } = lineCounter.linePos(key.range[0]);
        return { line, column: col };
      }
    }
  }
  return undefined;
}
