/**
 * Reads a systemd unit file and resolves its settings for one instance the way systemd (v252)
 * does, so the command lines of a template unit can be run by hand where no systemd runs.
 *
 * - unit file syntax (systemd.syntax(7)): `[Section]` headers, `Key=value` lines, `#`/`;`
 *   comments, a trailing backslash continues a line (joined with a space);
 * - each value is split into words as extract_first_word(EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE)
 *   does: whitespace separates words, single or double quotes group (also in the middle of a
 *   word), C escapes are resolved (\n \t \\ \" \xNN \NNN \uNNNN, \s for a space...);
 * - then the specifiers of each word are expanded (systemd.unit(5), "Specifiers"): %i, %I, %f,
 *   %n, %N, %p, %P, %j, %J, %% (others are refused here, so a test never runs a guess);
 * - Exec*= only: the first word may carry the prefixes "-" (failure ignored), "@" (argv[0]
 *   given separately) and ":" (no variable expansion); without ":", `$$` is a literal `$`,
 *   `${NAME}` expands in place, a word `$NAME` splits on whitespace (systemd.service(5)).
 *   Environment= words are NAME=VALUE.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';

export interface UnitFile {
  /** `section -> [key, raw value][]`, in file order. */
  sections: Map<string, [string, string][]>;
}

export function parseUnitFile(text: string): UnitFile {
  const sections = new Map<string, [string, string][]>();
  let current: [string, string][] | undefined;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!.replace(/\r$/, '');
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#') || trimmed.startsWith(';')) continue;
    while (line.endsWith('\\') && i + 1 < lines.length) {
      // A continued line: the backslash becomes a space; comment lines inside are skipped.
      line = `${line.slice(0, -1)} `;
      let next = lines[++i]!.replace(/\r$/, '');
      while (/^\s*[#;]/.test(next) && i + 1 < lines.length) next = lines[++i]!.replace(/\r$/, '');
      line += next;
    }
    const header = /^\s*\[([^\]]+)\]\s*$/.exec(line);
    if (header) {
      current = sections.get(header[1]!) ?? [];
      sections.set(header[1]!, current);
      continue;
    }
    const eq = line.indexOf('=');
    if (eq < 0 || !current) throw new Error(`unit file line ${i + 1}: not Key=value: ${line}`);
    current.push([line.slice(0, eq).trim(), line.slice(eq + 1).trim()]);
  }
  return { sections };
}

export function readUnitFile(file: string): UnitFile {
  return parseUnitFile(readFileSync(file, 'utf8'));
}

/** Raw values of `key` in `section`, in order (an empty assignment resets the list, as in systemd). */
export function unitValues(unit: UnitFile, section: string, key: string): string[] {
  const out: string[] = [];
  for (const [k, v] of unit.sections.get(section) ?? []) {
    if (k !== key) continue;
    if (v === '') out.length = 0;
    else out.push(v);
  }
  return out;
}

const SIMPLE_ESCAPES: Record<string, string> = {
  a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', s: ' ', '\\': '\\', '"': '"', "'": "'",
};

/** One C escape at text[i] (just after the backslash): [decoded, characters consumed]. */
function cunescapeOne(text: string, i: number): [string, number] {
  const c = text[i];
  if (c === undefined) throw new Error('a backslash at the end of a value');
  if (c in SIMPLE_ESCAPES) return [SIMPLE_ESCAPES[c]!, 1];
  const hex = (n: number, from: number) => {
    const digits = text.slice(from, from + n);
    if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(digits)) throw new Error(`bad escape \\${text.slice(i, from + n)}`);
    return Number.parseInt(digits, 16);
  };
  if (c === 'x') {
    const code = hex(2, i + 1);
    if (code === 0) throw new Error('\\x00 is refused by systemd');
    return [String.fromCharCode(code), 3];
  }
  if (c === 'u') return [String.fromCodePoint(hex(4, i + 1)), 5];
  if (c === 'U') return [String.fromCodePoint(hex(8, i + 1)), 9];
  if (/[0-7]/.test(c)) {
    const digits = text.slice(i, i + 3);
    if (!/^[0-7]{3}$/.test(digits)) throw new Error(`bad octal escape \\${digits}`);
    const code = Number.parseInt(digits, 8);
    if (code === 0) throw new Error('\\000 is refused by systemd');
    return [String.fromCharCode(code), 3];
  }
  throw new Error(`unknown escape \\${c}`);
}

/** Split a value into words: extract_first_word with EXTRACT_UNQUOTE | EXTRACT_CUNESCAPE. */
export function splitWords(value: string): string[] {
  const words: string[] = [];
  let i = 0;
  const isSpace = (ch: string | undefined) => ch !== undefined && /[ \t\n\r]/.test(ch);
  while (i < value.length) {
    while (isSpace(value[i])) i++;
    if (i >= value.length) break;
    let word = '';
    let quote: string | undefined;
    for (; i < value.length; i++) {
      const ch = value[i]!;
      if (quote) {
        if (ch === quote) quote = undefined;
        else if (ch === '\\') {
          const [s, n] = cunescapeOne(value, i + 1);
          word += s;
          i += n;
        } else word += ch;
      } else if (ch === '"' || ch === "'") quote = ch;
      else if (ch === '\\') {
        const [s, n] = cunescapeOne(value, i + 1);
        word += s;
        i += n;
      } else if (isSpace(ch)) break;
      else word += ch;
    }
    if (quote) throw new Error(`unbalanced ${quote} in: ${value}`);
    words.push(word);
  }
  return words;
}

/** `systemd-escape --unescape` of one name part: \xNN sequences, "-" for "/". */
export function unescapeName(part: string, isPath: boolean): string {
  const s = part.replace(/-/g, isPath ? '/' : '-').replace(/\\x([0-9a-fA-F]{2})/g, (_m, h: string) => String.fromCharCode(Number.parseInt(h, 16)));
  return s;
}

export interface InstanceContext {
  /** Template file name, e.g. e2eapp-staging@.service. */
  template: string;
  /** Escaped instance, e.g. tmp-dg\x2de2e\x2dabc (from `systemd-escape --path ROOT`). */
  instance: string;
}

/** Expand the specifiers of one word for an instance of a template unit. */
export function expandSpecifiers(word: string, ctx: InstanceContext): string {
  const at = ctx.template.indexOf('@');
  const dot = ctx.template.lastIndexOf('.');
  if (at < 0 || dot < at) throw new Error(`not a template unit name: ${ctx.template}`);
  const prefix = ctx.template.slice(0, at);
  const suffix = ctx.template.slice(dot);
  const name = `${prefix}@${ctx.instance}${suffix}`;
  const unescapedInstance = unescapeName(ctx.instance, false);
  const unescapedPath = unescapeName(ctx.instance, true);
  const table: Record<string, string> = {
    i: ctx.instance,
    I: unescapedInstance,
    // %f: "the unescaped instance name, prefixed with /" (a path that starts with / already is kept).
    f: unescapedPath.startsWith('/') ? unescapedPath : `/${unescapedPath}`,
    n: name,
    N: name.slice(0, -suffix.length),
    p: prefix,
    P: unescapeName(prefix, false),
    j: prefix.slice(prefix.lastIndexOf('-') + 1),
    J: unescapeName(prefix.slice(prefix.lastIndexOf('-') + 1), false),
    '%': '%',
  };
  return word.replace(/%(.)?/g, (m, c: string | undefined) => {
    if (c === undefined) throw new Error(`a lone % at the end of ${JSON.stringify(word)}`);
    const v = table[c];
    if (v === undefined) throw new Error(`specifier %${c} is not resolved by this test helper (in ${JSON.stringify(word)})`);
    return v;
  });
}

/** Environment= settings of a section, resolved: NAME -> VALUE (later assignments win). */
export function resolveEnvironment(unit: UnitFile, section: string, ctx: InstanceContext): Record<string, string> {
  const env: Record<string, string> = {};
  for (const value of unitValues(unit, section, 'Environment')) {
    for (const raw of splitWords(value)) {
      const word = expandSpecifiers(raw, ctx);
      const eq = word.indexOf('=');
      if (eq <= 0) throw new Error(`Environment= word without NAME=: ${JSON.stringify(word)}`);
      env[word.slice(0, eq)] = word.slice(eq + 1);
    }
  }
  return env;
}

export interface ExecCommand {
  /** The executable (absolute path, as systemd requires here). */
  path: string;
  /** argv including argv[0]. */
  argv: string[];
  /** A "-" prefix: a failing exit status is ignored. */
  ignoreFailure: boolean;
}

/** Expand `$$`, `${NAME}` and whole-word `$NAME` in an Exec argument list (after specifiers). */
function expandExecVariables(words: string[], env: Record<string, string>): string[] {
  const out: string[] = [];
  for (const w of words) {
    const whole = /^\$([A-Za-z_][A-Za-z0-9_]*)$/.exec(w);
    if (whole) {
      out.push(...(env[whole[1]!] ?? '').split(/[ \t\n]+/).filter((x) => x !== ''));
      continue;
    }
    out.push(
      w.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (m, braced: string | undefined, bare: string | undefined) => {
        if (m === '$$') return '$';
        if (braced !== undefined) return env[braced] ?? '';
        throw new Error(`$${bare} inside a word is not expanded by systemd; use \${${bare}}`);
      }),
    );
  }
  return out;
}

/** The command lines of an Exec*= setting, resolved for the instance (one per assignment). */
export function resolveExec(unit: UnitFile, key: string, ctx: InstanceContext, env: Record<string, string>): ExecCommand[] {
  return unitValues(unit, 'Service', key).map((value) => {
    const raw = splitWords(value);
    if (raw.length === 0) throw new Error(`${key}= is empty`);
    let first = raw[0]!;
    let ignoreFailure = false;
    let argv0Separate = false;
    let noEnvExpand = false;
    for (;;) {
      const c = first[0];
      if (c === '-') ignoreFailure = true;
      else if (c === '@') argv0Separate = true;
      else if (c === ':') noEnvExpand = true;
      else if (c === '+' || c === '!') throw new Error(`${key}: prefix ${c} (privileges) is not supported by this test helper`);
      else break;
      first = first.slice(1);
    }
    const words = [expandSpecifiers(first, ctx), ...raw.slice(1).map((w) => expandSpecifiers(w, ctx))];
    const expanded = [words[0]!, ...(noEnvExpand ? words.slice(1) : expandExecVariables(words.slice(1), env))];
    const execPath = expanded[0]!;
    if (!path.isAbsolute(execPath)) throw new Error(`${key}: ${execPath} is not an absolute path (systemd v252 would search only its own PATH)`);
    const argv = argv0Separate ? expanded.slice(1) : expanded;
    return { path: execPath, argv, ignoreFailure };
  });
}

/** systemd's default PATH for services of the system manager (v252, merged /usr). */
export const SYSTEMD_DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin';
