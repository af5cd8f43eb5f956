// The bundle's stand-in for string-width (used by yargs, cliui and wrap-ansi to lay out help).
// Printable ASCII is measured as its length, which is what every string-width version returns for
// it (version 8 has this very fast path; test/bundle.test.ts checks the installed copies); other
// text goes to the real module, which is loaded on first use. So a run whose help text is ASCII
// never builds string-width's Intl.Segmenter and emoji tables (yargs lays out its help on every
// command, even when it does not print it).

/** Text whose width is its length: printable ASCII only (no control characters, no ANSI escapes). */
export const ASCII_WIDTH_IS_LENGTH = /^[\u0020-\u007E]*$/;

/** Source of the module that replaces `string-width` at `realPath` in the bundle. */
export function fastStringWidthSource(realPath) {
  return `
let real;
export default function stringWidth(input, options) {
  if (typeof input === "string" && ${ASCII_WIDTH_IS_LENGTH}.test(input)) return input.length;
  real ??= require(${JSON.stringify(realPath)}).default;
  return real(input, options);
}
`;
}
