// Reading a manifest from disk: YAML or JSON, keeping the parsed document so that every
// later error can point at a line and column.
import path from "node:path";
import { existsSync, readFileSync } from "node:fs";
import { LineCounter, parseDocument, isMap, isNode, isPair, isScalar, isSeq, type Document } from "yaml";
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
  // Synchronous: one read, without round trips through the thread pool.
  const text = readFileSync(file, "utf8");
  const displayName = path.relative(cwd, file) || path.basename(file);
  return parseManifestText(text, file, displayName);
}

/** Pure: parse manifest text (YAML, or JSON which YAML 1.2 reads too) into data plus a position lookup. */
export function parseManifestText(text: string, file: string, displayName = file): LoadedManifest {
  const isJson = file.endsWith(".json");
  if (isJson) {
    // JSON first: YAML would accept some invalid JSON (trailing commas, single quotes) and word
    // the rest in YAML terms. Duplicate keys, which JSON.parse allows, are caught by YAML below.
    try {
      JSON.parse(text.replace(/^\uFEFF/, ""));
    } catch (error) {
      const message = (error as Error).message;
      const match = /at position (\d+)/.exec(message);
      const offset = match ? Number(match[1]) + (text.startsWith("\uFEFF") ? 1 : 0) : text.length;
      throw new ManifestError([
        {
          file: displayName,
          path: [],
          position: positionAt(text, offset),
          message: `JSON syntax error: ${message.replace(/ in JSON at position \d+.*$/, "").replace(/^Unexpected end of JSON input$/, "the file ends too early")}`,
          fix: "correct the JSON syntax at that position",
        },
      ]);
    }
  }
  const { doc, lineCounter } = parseYamlDocument(text);
  const firstError = doc.errors[0];
  if (firstError) {
    const offset = firstError.pos[0];
    const { line, col } = lineCounter.linePos(offset);
    const duplicate = firstError.code === "DUPLICATE_KEY";
    // A duplicate key is named by its path; a syntax error has no trustworthy one.
    const errorPath = duplicate ? (pathAt(doc.contents, offset) ?? []) : [];
    throw new ManifestError([
      {
        file: displayName,
        path: errorPath,
        position: { line, column: col },
        message: duplicate
          ? `the key ${JSON.stringify(String(errorPath.at(-1) ?? ""))} appears twice in one mapping`
          : `${isJson ? "JSON" : "YAML"} syntax error: ${firstError.message.split("\n")[0]}`,
        fix: duplicate ? "keep only one of them (merge their contents if both matter)" : "correct the syntax at that position",
      },
    ]);
  }
  const data: unknown = doc.toJS({ maxAliasCount: 100 });
  const locate = (manifestPath: (string | number)[]): SourcePosition | undefined => {
    // Walk up until a node exists: a missing field is reported at its parent.
    for (let depth = manifestPath.length; depth >= 0; depth--) {
      const node = depth === 0 ? doc.contents : doc.getIn(manifestPath.slice(0, depth), true);
      if (isNode(node) && node.range) {
        // A mapping entry is pointed at by its key (a missing field by its parent's key), a list
        // item or the whole document by the node itself.
        const keyPos = depth > 0 ? keyPosition(doc, manifestPath.slice(0, depth), lineCounter) : undefined;
        if (keyPos) return keyPos;
        const { line, col } = lineCounter.linePos(node.range[0]);
        return { line, column: col };
      }
    }
    return undefined;
  };
  return { file, displayName, baseName: path.basename(file), data, locate };
}

/**
 * parseDocument with unique keys. yaml checks uniqueness by comparing each key with every earlier
 * key of its mapping (quadratic: seconds for a few thousand apps), so the text is parsed without
 * that check and scanned for repeated keys in linear time; only when the scan finds one is it
 * parsed again with yaml's own check, whose errors then stand exactly as before.
 */
function parseYamlDocument(text: string): { doc: Document; lineCounter: LineCounter } {
  const parse = (uniqueKeys: boolean) => {
    const lineCounter = new LineCounter();
    return { doc: parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys, strict: true }) as Document, lineCounter };
  };
  const unchecked = parse(false);
  return mayRepeatKeys(unchecked.doc.contents) ? parse(true) : unchecked;
}

/**
 * True when a mapping under `node` has two scalar keys with equal values. yaml's check compares
 * scalar keys' values with ===; a Set's equality also matches NaN with NaN, which can only add a
 * second parse, never miss a repeated key.
 */
function mayRepeatKeys(node: unknown): boolean {
  if (isMap(node)) {
    const seen = new Set<unknown>();
    for (const pair of node.items) {
      if (isScalar(pair.key)) {
        if (seen.has(pair.key.value)) return true;
        seen.add(pair.key.value);
      }
      if (mayRepeatKeys(pair.key) || mayRepeatKeys(pair.value)) return true;
    }
    return false;
  }
  if (isSeq(node)) return node.items.some(mayRepeatKeys);
  if (isPair(node)) return mayRepeatKeys(node.key) || mayRepeatKeys(node.value);
  return false;
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

/** 1-based line and column of a string offset. */
function positionAt(text: string, offset: number): SourcePosition {
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  return { line, column: offset - (before.lastIndexOf("\n") + 1) + 1 };
}

/** The manifest path of the deepest node at an offset (for errors the YAML parser reports by offset only). */
function pathAt(node: unknown, offset: number): (string | number)[] | undefined {
  const contains = (candidate: unknown) => isNode(candidate) && candidate.range !== undefined && candidate.range !== null && candidate.range[0] <= offset && offset < candidate.range[2];
  if (isMap(node)) {
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : undefined;
      if (key === undefined) continue;
      if (contains(pair.key)) return [key];
      if (contains(pair.value)) return [key, ...(pathAt(pair.value, offset) ?? [])];
    }
    return [];
  }
  if (isSeq(node)) {
    const index = node.items.findIndex(contains);
    return index < 0 ? [] : [index, ...(pathAt(node.items[index], offset) ?? [])];
  }
  return undefined;
}
