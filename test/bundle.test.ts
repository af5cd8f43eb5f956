// What the bundle (src/build/bundle.mjs) relies on about its dependencies. The bundle itself is
// exercised by every test that runs bin/deploygen.js.
import { describe, expect, it } from "vitest";
import { readdirSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { REPO_ROOT } from "./helpers/generate.js";
// @ts-expect-error: a build script without type declarations
import { ASCII_WIDTH_IS_LENGTH } from "../src/build/string-width-fast.mjs";

/** Every installed copy of string-width (yargs, cliui and wrap-ansi each pin their own). */
function stringWidthCopies(dir = path.join(REPO_ROOT, "node_modules"), depth = 0): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const full = path.join(dir, entry.name);
    if (entry.name === "string-width") found.push(path.join(full, "index.js"));
    else if (depth < 3 && (entry.name === "node_modules" || path.basename(dir) === "node_modules" || entry.name.startsWith("@"))) found.push(...stringWidthCopies(full, depth + 1));
  }
  return found;
}

describe("the bundle's string-width fast path", () => {
  const printable = Array.from({ length: 0x7f - 0x20 }, (_, index) => String.fromCharCode(0x20 + index));
  const copies = stringWidthCopies();

  it("finds the copies that yargs' help layout uses", () => {
    expect(copies.length).toBeGreaterThanOrEqual(1);
  });

  it.each(copies.map((file) => [path.relative(REPO_ROOT, file), file]))("%s measures printable ASCII as its length", async (_name, file) => {
    const stringWidth = (await import(pathToFileURL(file).href)).default as (text: string) => number;
    for (const character of printable) expect(stringWidth(character), JSON.stringify(character)).toBe(1);
    for (const text of ["", "deploygen generate [-m FILE] [--env E]...", printable.join(""), "  --json  machine-readable output  [boolean]"]) {
      expect(ASCII_WIDTH_IS_LENGTH.test(text)).toBe(true);
      expect(stringWidth(text)).toBe(text.length);
    }
  });

  it("takes nothing else: control characters, ANSI escapes and non-ASCII go to string-width", () => {
    for (const text of ["\t", "a\nb", "\u001b[31mred\u001b[0m", "\u007f", "é", "日本", "👍"]) expect(ASCII_WIDTH_IS_LENGTH.test(text)).toBe(false);
  });
});
