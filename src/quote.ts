// Quoting per target language. Every data value reaches a generated file through one of these.

/** POSIX shell: single quotes keep every byte literal; a single quote is closed, escaped and reopened. */
export function shellQuote(value: string): string {
  if (value.includes("\0")) throw new Error("a shell word cannot contain a NUL byte");
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/**
 * systemd unit syntax, a double-quoted word (systemd.syntax(7)): backslash and double quote are
 * escaped, control characters become C escapes, and "%" is doubled so no specifier is expanded.
 */
export function systemdQuote(value: string): string {
  if (value.includes("\0")) throw new Error("a systemd value cannot contain a NUL byte");
  const escaped = value.replace(/[\\"\x01-\x1f\x7f]/g, (char) => {
    switch (char) {
      case "\\":
        return "\\\\";
      case '"':
        return '\\"';
      case "\n":
        return "\\n";
      case "\t":
        return "\\t";
      case "\r":
        return "\\r";
      default:
        return `\\x${char.charCodeAt(0).toString(16).padStart(2, "0")}`;
    }
  });
  return `"${escapeSystemdSpecifiers(escaped)}"`;
}

/** A systemd value written unquoted (paths in WorkingDirectory=-style settings): only "%" needs doubling. */
export function escapeSystemdSpecifiers(value: string): string {
  return value.replace(/%/g, "%%");
}

/** JavaScript string literal (JSON is a subset of JavaScript since ES2019, U+2028/9 included). */
export function jsString(value: string): string {
  return JSON.stringify(value);
}

/** Any JSON-able value as JavaScript source, pretty-printed. */
export function jsValue(value: unknown, indent = 2): string {
  return JSON.stringify(value, null, indent);
}
