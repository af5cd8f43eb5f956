// Quoting per target language. Every data value reaches a generated file through one of these.

/**
 * POSIX shell: single quotes keep every byte literal; a single quote is closed, escaped and
 * reopened. "$", "`" and a backslash are written the same way ('a'\$'(b)'): the same word to the shell,
 * and shellcheck then has no reason to suspect an expansion meant to happen (SC2016) or a quote
 * meant to be escaped (SC1003), whatever the data.
 */
export function shellQuote(value: string): string {
  if (value.includes("\0")) throw new Error("a shell word cannot contain a NUL byte");
  if (value === "") return "''";
  // Runs of other characters in single quotes, each special character backslash-escaped between them.
  return value.replace(/[^'$`\\]+|['$`\\]/g, (part) => (/^['$`\\]$/.test(part) ? `\\${part}` : `'${part}'`));
}

/**
 * The inside of a double-quoted systemd word (systemd.syntax(7)): backslash and double quote are
 * escaped, control characters become C escapes, and "%" is doubled so no specifier is expanded.
 * systemd removes the quotes, then resolves C escapes, then specifiers, so "%%" is a literal "%"
 * and an escaped "\x25" can never become a specifier.
 */
export function systemdEscape(value: string): string {
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
  return escapeSystemdSpecifiers(escaped);
}

/** systemd unit syntax, one double-quoted word holding `value` exactly. */
export function systemdQuote(value: string): string {
  return `"${systemdEscape(value)}"`;
}

/** Template text that may precede data inside a systemd word: specifiers such as %f and "/" only. */
const SYSTEMD_PREFIX = /^(?:%[a-zA-Z]|\/)*$/;

/**
 * One double-quoted systemd word: `prefix` is template text (specifiers such as "%f/", expanded by
 * systemd), `value` is data (kept literally). For Exec*= arguments and Environment= paths under %f.
 */
export function systemdWord(prefix: string, value: string): string {
  if (!SYSTEMD_PREFIX.test(prefix)) throw new Error(`a systemd word prefix may only hold specifiers and "/", got ${JSON.stringify(prefix)}`);
  return `"${prefix}${systemdEscape(value)}"`;
}

/** An Environment= assignment, quoted as one word: NAME=<prefix><value>, prefix as in systemdWord. */
export function systemdEnvAssignment(name: string, prefix: string, value: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`not an environment variable name: ${JSON.stringify(name)}`);
  if (!SYSTEMD_PREFIX.test(prefix)) throw new Error(`a systemd word prefix may only hold specifiers and "/", got ${JSON.stringify(prefix)}`);
  return `"${name}=${prefix}${systemdEscape(value)}"`;
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
