/**
 * The bash env-file parser used by the generated scripts
 * (templates/partials/env-file.sh) against the two JavaScript parsers it must
 * agree with: dotenv 17 `parse()` (used by the CLI) and Node's `util.parseEnv()`.
 *
 * Every table case runs the real bash function, dotenv.parse and util.parseEnv
 * on the same bytes. A case either states the result all three agree on, or a
 * documented divergence: what the bash parser does (follow dotenv, or refuse
 * the line) and what dotenv and parseEnv actually return, so that the table
 * breaks if either library changes its behaviour.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseEnv } from 'node:util';
import dotenv from 'dotenv';
import fc from 'fast-check';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const PARTIAL = join(ROOT, 'templates', 'partials', 'env-file.sh');

type Env = Record<string, string>;
type Refusal = { refuse: number; message: RegExp };
type Case = {
  name: string;
  text: string;
  /** What bash returns: the keys and values (dotenv.parse returns the same), or a refusal of line N. */
  bash: Env | Refusal;
  /** What dotenv.parse returns, when bash refuses. */
  dotenv?: Env;
  /** What util.parseEnv returns, when it differs from the bash result (documented divergence). */
  node?: Env;
};

const refuse = (line: number, message: RegExp): Refusal => ({ refuse: line, message });
const isRefusal = (r: Env | Refusal): r is Refusal => 'refuse' in r;

/**
 * Names starting with DIVERGENCE or REFUSED are the documented cases (also listed at the top of
 * the partial): where dotenv.parse and util.parseEnv disagree, bash follows dotenv (only for a
 * `#KEY=v` last line) or refuses the line; a few inputs both libraries accept are refused too.
 */
const CASES: Case[] = [
  // ---- accepted: bash == dotenv.parse == util.parseEnv --------------------------------
  { name: 'plain KEY=value lines', text: 'A=1\nB=hello world\n', bash: { A: '1', B: 'hello world' } },
  { name: 'export prefix', text: 'export A=1\nexport B="x y"\n', bash: { A: '1', B: 'x y' } },
  { name: 'spaces around = and the value are trimmed', text: 'A = 1\nB  =   two words   \n', bash: { A: '1', B: 'two words' } },
  { name: 'leading spaces before the key', text: '   A=1\n  export B=2\n', bash: { A: '1', B: '2' } },
  {
    name: 'full-line comments and blank lines',
    text: '# top\n\nA=1\n\n\n# A=2\n#B=3\n#\nC=4\n',
    bash: { A: '1', C: '4' },
  },
  {
    name: 'inline comments end unquoted values, with or without a space before #',
    text: 'A=value # comment\nB=value#nospace\nC= # only a comment\nD=#\n',
    bash: { A: 'value', B: 'value', C: '', D: '' },
  },
  { name: '# inside quotes is kept', text: 'A="a # b"\nB=\'#x\'\nC=`x#y`\n', bash: { A: 'a # b', B: '#x', C: 'x#y' } },
  {
    name: 'single quotes are literal',
    text: "A='a\\nb $HOME \\t \\\\ x'\n",
    bash: { A: 'a\\nb $HOME \\t \\\\ x' },
  },
  {
    name: 'double quotes: \\n becomes a newline, \\t \\\\ and others stay as written',
    text: 'A="l1\\nl2"\nB="tab\\there"\nC="back\\\\nslash"\nD="\\n"\n',
    bash: { A: 'l1\nl2', B: 'tab\\there', C: 'back\\\nslash', D: '\n' },
  },
  { name: 'backtick quotes are literal', text: 'A=`it\'s "quoted" \\n`\n', bash: { A: 'it\'s "quoted" \\n' } },
  { name: '= inside values', text: 'A=b=c\nB="x=y"\nC==\n', bash: { A: 'b=c', B: 'x=y', C: '=' } },
  {
    name: 'empty values',
    text: "A=\nB=\"\"\nC=''\nD=``\nE=   \nF=",
    bash: { A: '', B: '', C: '', D: '', E: '', F: '' },
  },
  {
    name: 'CRLF line endings',
    text: 'A=1\r\nB="x"\r\n\r\n# c\r\nC=3 # c\r\nD=\r\n',
    bash: { A: '1', B: 'x', C: '3', D: '' },
  },
  {
    name: 'multi-line double-quoted value (\\n expanded too)',
    text: 'A="l1\nl2\\nl3\n  l4  "\nB=2\n',
    bash: { A: 'l1\nl2\nl3\n  l4  ', B: '2' },
  },
  {
    name: 'multi-line single-quoted value keeps #, = and blank lines',
    text: "A='l1\n# not a comment\n\n  \nB=2'\nC=3\n",
    bash: { A: 'l1\n# not a comment\n\n  \nB=2', C: '3' },
  },
  { name: 'multi-line backtick value', text: 'A=`line 1\nline "2"`  # c\nB=2', bash: { A: 'line 1\nline "2"', B: '2' } },
  { name: 'multi-line value with CRLF', text: 'A="l1\r\nl2"\r\nB=\'x\r\ny\'\r\n', bash: { A: 'l1\nl2', B: 'x\ny' } },
  { name: 'later duplicates override earlier ones', text: 'A=1\nB=x\nA=2\nB=\n', bash: { A: '2', B: '' } },
  {
    name: 'unicode values',
    text: 'A=ü€😀\nB="日本語 テキスト"\nC=a\u00a0b\nD="x\u2028y"\n',
    bash: { A: 'ü€😀', B: '日本語 テキスト', C: 'a\u00a0b', D: 'x\u2028y' },
  },
  {
    name: '$(...) in values is data (canary)',
    text: "A=$(touch CANARY)\nB=\"$(touch CANARY)\"\nC='$(touch CANARY)'\nD=${IFS}$PATH;touch CANARY\n",
    bash: { A: '$(touch CANARY)', B: '$(touch CANARY)', C: '$(touch CANARY)', D: '${IFS}$PATH;touch CANARY' },
  },
  {
    name: 'backticks in values are data (canary)',
    text: 'A=`touch CANARY`\nB=x`touch CANARY`y\nC="`touch CANARY`"\nD=\'; touch CANARY; echo \'\n',
    bash: { A: 'touch CANARY', B: 'x`touch CANARY`y', C: '`touch CANARY`', D: '; touch CANARY; echo ' },
  },
  {
    name: 'backslashes in unquoted values (also at the end)',
    text: 'A=C:\\dir\\file\nB=a\\\\b\nC=ends\\\nD=\\n\n',
    bash: { A: 'C:\\dir\\file', B: 'a\\\\b', C: 'ends\\', D: '\\n' },
  },
  { name: '% in values (no printf format)', text: 'A=100%\nB=%s%n%d%%\nC="%x %q"\n', bash: { A: '100%', B: '%s%n%d%%', C: '%x %q' } },
  {
    name: 'Handlebars braces in values',
    text: 'A={{x}}\nB="{{ y }}"\nC={{{z}}}\n',
    bash: { A: '{{x}}', B: '{{ y }}', C: '{{{z}}}' },
  },
  {
    name: 'tabs inside values are kept',
    text: "A=a\tb\nB=\"\tpadded\t\"\nC='\t'\n",
    bash: { A: 'a\tb', B: '\tpadded\t', C: '\t' },
  },
  { name: 'missing trailing newline', text: 'A=1\nB=last', bash: { A: '1', B: 'last' } },
  { name: 'missing trailing newline after a quoted value', text: 'A="x y"', bash: { A: 'x y' } },
  {
    name: 'quotes inside unquoted values are literal',
    text: 'A=it\'s\nB=say "hi"\nC=x`y\nD=end\'\n',
    bash: { A: "it's", B: 'say "hi"', C: 'x`y', D: "end'" },
  },
  {
    name: 'other quote characters inside quoted values',
    text: 'A="it\'s"\nB=\'say "hi"\'\nC="`"\nD=`\'`\n',
    bash: { A: "it's", B: 'say "hi"', C: '`', D: "'" },
  },
  {
    name: 'spaces, tabs and a comment after the closing quote',
    text: 'A="x"   \nB=\'y\'\t# c\nC=`z`#c\nD="w" # it\'s "fine"\n',
    bash: { A: 'x', B: 'y', C: 'z', D: 'w' },
  },
  { name: 'whitespace inside quotes is kept', text: 'A="  padded  "\nB=\'  \'\n', bash: { A: '  padded  ', B: '  ' } },
  { name: 'export as a key name', text: 'export=1\nexport export=2\nexport =3\n', bash: { export: '3' } },
  { name: 'empty file', text: '', bash: {} },
  { name: 'only comments and blank lines', text: '# a\n\n#b=c\n\n', bash: {} },
  { name: 'lower case, underscores and digits in keys', text: '_a1=x\nlower_case=y\nA_2_B=z\n', bash: { _a1: 'x', lower_case: 'y', A_2_B: 'z' } },
  {
    name: 'DIVERGENCE followed (dotenv): "#KEY=v" as the last line without a newline',
    text: 'A=1\n#B=2',
    bash: { A: '1' },
    node: { A: '1', '#B': '2' },
  },

  // ---- refused: dotenv and util.parseEnv disagree --------------------------------------
  {
    name: 'REFUSED line without = (dotenv skips it, Node glues it onto the next key)',
    text: 'A=1\nNOEQ\nB=2\n',
    bash: refuse(2, /no '='/),
    dotenv: { A: '1', B: '2' },
    node: { A: '1', 'NOEQ\nB': '2' },
  },
  {
    name: 'REFUSED KEY: value (dotenv-only syntax)',
    text: 'A: b\n',
    bash: refuse(1, /KEY: value/),
    dotenv: { A: 'b' },
    node: {},
  },
  {
    name: 'REFUSED export KEY without a value',
    text: 'export A\nB=1\n',
    bash: refuse(1, /no '='/),
    dotenv: { B: '1' },
    node: { 'A\nB': '1' },
  },
  {
    name: 'REFUSED whitespace-only line (Node glues it onto the next key)',
    text: 'A=1\n  \nB=2\n',
    bash: refuse(2, /only spaces or tabs/),
    dotenv: { A: '1', B: '2' },
    node: { A: '1', '\nB': '2' },
  },
  {
    name: 'REFUSED tab-only line',
    text: 'A=1\n\t\nB=2\n',
    bash: refuse(2, /only spaces or tabs/),
    dotenv: { A: '1', B: '2' },
    node: { A: '1', '\t\nB': '2' },
  },
  {
    name: 'REFUSED indented comment (Node loses the next key)',
    text: 'A=1\n  # note\nB=2\n',
    bash: refuse(2, /indented comment/),
    dotenv: { A: '1', B: '2' },
    node: { A: '1', '# note\nB': '2' },
  },
  {
    name: 'REFUSED tab before the key',
    text: '\tA=1\n',
    bash: refuse(1, /before the key/),
    dotenv: { A: '1' },
    node: { '\tA': '1' },
  },
  {
    name: 'REFUSED tab between the key and =',
    text: 'A\t=1\n',
    bash: refuse(1, /between the key and '='/),
    dotenv: { A: '1' },
    node: { 'A\t': '1' },
  },
  {
    name: 'REFUSED two spaces after export',
    text: 'export  A=1\n',
    bash: refuse(1, /after 'export'/),
    dotenv: { A: '1' },
    node: { ' A': '1' },
  },
  {
    name: 'REFUSED tab after export',
    text: 'export\tA=1\n',
    bash: refuse(1, /after 'export'/),
    dotenv: { A: '1' },
    node: { 'export\tA': '1' },
  },
  {
    name: 'REFUSED trailing tab in an unquoted value',
    text: 'A=1\t\n',
    bash: refuse(1, /tab or other non-space whitespace/),
    dotenv: { A: '1' },
    node: { A: '1\t' },
  },
  {
    name: 'REFUSED tab before an inline comment',
    text: 'A=x\t# c\n',
    bash: refuse(1, /non-space whitespace/),
    dotenv: { A: 'x' },
    node: { A: 'x\t' },
  },
  {
    name: 'REFUSED tab before a quoted value',
    text: 'A=\t"x"\n',
    bash: refuse(1, /non-space whitespace/),
    dotenv: { A: 'x' },
    node: { A: '\t"x"' },
  },
  {
    name: 'REFUSED no-break space at the end of an unquoted value',
    text: 'A=abc\u00a0\n',
    bash: refuse(1, /non-space whitespace/),
    dotenv: { A: 'abc' },
    node: { A: 'abc\u00a0' },
  },
  {
    name: 'REFUSED ideographic space at the start of an unquoted value',
    text: 'B=1\nA=\u3000abc\n',
    bash: refuse(2, /non-space whitespace/),
    dotenv: { A: 'abc', B: '1' },
    node: { A: '\u3000abc', B: '1' },
  },
  {
    name: 'REFUSED UTF-8 byte order mark',
    text: '\ufeffA=1\n',
    bash: refuse(1, /byte order mark/),
    dotenv: { A: '1' },
    node: { '\ufeffA': '1' },
  },
  {
    name: 'REFUSED lone carriage return',
    text: 'A=x\rB=y\n',
    bash: refuse(1, /carriage return/),
    dotenv: { A: 'x', B: 'y' },
    node: { A: 'xB=y' },
  },
  {
    name: 'REFUSED lone carriage return inside quotes',
    text: "A='a\rb'\n",
    bash: refuse(1, /carriage return/),
    dotenv: { A: 'a\nb' },
    node: { A: 'ab' },
  },
  {
    name: 'REFUSED text after the closing quote',
    text: "A='x' junk\n",
    bash: refuse(1, /text after the closing '/),
    dotenv: { A: "'x' junk" },
    node: { A: 'x' },
  },
  {
    name: 'REFUSED two quoted strings in a row',
    text: 'A="x""y"\n',
    bash: refuse(1, /text after the closing "/),
    dotenv: { A: 'x""y' },
    node: { A: 'x' },
  },
  {
    name: 'REFUSED empty quotes followed by text',
    text: "A=''x\n",
    bash: refuse(1, /text after the closing '/),
    dotenv: { A: "''x" },
    node: { A: '' },
  },
  {
    name: 'REFUSED text after a multi-line closing quote (names both lines)',
    text: 'A="a\nb" junk\nC=1\n',
    bash: refuse(2, /opened with " on line 1/),
    dotenv: { A: '"a', C: '1' },
    node: { A: 'a\nb', C: '1' },
  },
  {
    name: 'REFUSED backslash-escaped quote',
    text: 'A="a\\"b"\n',
    bash: refuse(1, /backslash right before the closing "/),
    dotenv: { A: 'a\\"b' },
    node: { A: 'a\\' },
  },
  {
    name: 'REFUSED backslash before the closing quote (dotenv runs on to a later quote)',
    text: 'A="a\\\\" # q"\n',
    bash: refuse(1, /backslash right before the closing "/),
    dotenv: { A: 'a\\\\" # q' },
    node: { A: 'a\\\\' },
  },
  {
    name: 'REFUSED U+2028 in a comment (dotenv starts a new KEY=value after it)',
    text: '# note\u2028B=1\nA=2\n',
    bash: refuse(1, /U\+2028/),
    dotenv: { A: '2', B: '1' },
    node: { A: '2' },
  },
  {
    name: 'REFUSED U+2028 in an unquoted value (dotenv strips quotes after it)',
    text: 'A=x\u2028`y`\n',
    bash: refuse(1, /U\+2028/),
    dotenv: { A: 'x\u2028y' },
    node: { A: 'x\u2028`y`' },
  },
  {
    name: 'REFUSED \\r in a double-quoted value',
    text: 'A="C:\\repo"\n',
    bash: refuse(1, /\\r in a double-quoted value/),
    dotenv: { A: 'C:\repo' },
    node: { A: 'C:\\repo' },
  },
  {
    name: 'REFUSED a quoted value on the line after KEY=',
    text: 'A=\n"B"\n',
    bash: refuse(2, /no '='/),
    dotenv: { A: 'B' },
    node: { A: '' },
  },
  {
    name: 'REFUSED non-ASCII key',
    text: 'KÉY=1\n',
    bash: refuse(1, /invalid key/),
    dotenv: {},
    node: { KÉY: '1' },
  },
  {
    name: 'REFUSED space inside the key',
    text: 'A B=1\n',
    bash: refuse(1, /invalid key/),
    dotenv: {},
    node: { 'A B': '1' },
  },
  {
    name: 'REFUSED shell code as a key (canary)',
    text: 'a[$(touch CANARY)]=1\n$(touch CANARY)=2\n',
    bash: refuse(1, /invalid key/),
    dotenv: {},
    node: { 'a[$(touch CANARY)]': '1', '$(touch CANARY)': '2' },
  },

  // ---- refused although dotenv and util.parseEnv agree ---------------------------------
  {
    name: 'REFUSED (both accept) key with a dot',
    text: 'A.B=1\n',
    bash: refuse(1, /invalid key/),
    dotenv: { 'A.B': '1' },
  },
  {
    name: 'REFUSED (both accept) key with a dash',
    text: 'A=0\nmy-key=1\n',
    bash: refuse(2, /invalid key/),
    dotenv: { A: '0', 'my-key': '1' },
  },
  {
    name: 'REFUSED (both accept) key starting with a digit',
    text: '1A=x\n',
    bash: refuse(1, /invalid key/),
    dotenv: { '1A': 'x' },
  },
  {
    name: 'REFUSED (both ignore) empty key',
    text: '=x\n',
    bash: refuse(1, /no key/),
    dotenv: {},
  },
  {
    name: 'REFUSED (both drop it) the key __proto__',
    text: '__proto__=x\nA=1\n',
    bash: refuse(1, /__proto__/),
    dotenv: { A: '1' },
  },
  {
    name: 'REFUSED (both keep the quote) unterminated double quote',
    text: 'A="abc\nB=1\n',
    bash: refuse(1, /never closed/),
    dotenv: { A: '"abc', B: '1' },
  },
  {
    name: 'REFUSED unterminated single quote at end of file',
    text: "A='abc",
    bash: refuse(1, /never closed/),
    dotenv: { A: "'abc" },
    node: {},
  },
  {
    name: 'REFUSED (both keep it) NUL byte',
    text: 'A=1\nB=x\0y\n',
    bash: refuse(2, /NUL byte/),
    dotenv: { A: '1', B: 'x\0y' },
  },
  {
    name: 'REFUSED all or nothing: good lines before a bad one',
    text: 'A=1\nB="two"\nC=3\n\nbad key=4\nD=5\n',
    bash: refuse(5, /invalid key/),
    dotenv: { A: '1', B: 'two', C: '3', D: '5' },
    node: { A: '1', B: 'two', C: '3', D: '5', 'bad key': '4' },
  },
];

const sortEnv = (e: Record<string, string>): Env =>
  Object.fromEntries(Object.entries(e).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

const dotenvParse = (text: string): Env => sortEnv(dotenv.parse(text));
const nodeParse = (text: string): Env => sortEnv(parseEnv(text) as Env);

/** Decode `key\0value\0...` into an object. */
function decodePairs(out: Buffer): Env {
  const parts = out.toString('utf8').split('\0');
  parts.pop(); // trailing empty string after the last NUL
  const env: Env = {};
  for (let i = 0; i + 1 < parts.length; i += 2) env[parts[i]!] = parts[i + 1]!;
  return sortEnv(env);
}

let work: string;
let seq = 0;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'deploygen-envfile-'));
});
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});
beforeEach(() => {
  rmSync(join(work, 'CANARY'), { force: true });
});

function writeEnv(text: string | Buffer): string {
  seq += 1;
  const file = join(work, `case-${seq}.env`);
  writeFileSync(file, text);
  return file;
}

/** Run bash in a UTF-8 locale when the host has one (the parser itself works on bytes under LC_ALL=C). */
const bashEnv = ((): NodeJS.ProcessEnv => {
  const utf8 = { ...process.env, LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8' };
  const probe = spawnSync('bash', ['-c', ':'], { env: utf8 });
  return probe.status === 0 && probe.stderr.length === 0 ? utf8 : process.env;
})();

/** The command from the brief, under `set -euo pipefail`, cwd = the scratch folder (CANARY would land there). */
function runBash(file: string): { status: number | null; env: Env; stderr: string } {
  const script =
    'set -euo pipefail; source "$2"; declare -A v; ' +
    'dg_env_load "$1" v && for k in "${!v[@]}"; do printf "%s\\0%s\\0" "$k" "${v[$k]}"; done';
  const r = spawnSync('bash', ['-c', script, '_', file, PARTIAL], { cwd: work, env: bashEnv });
  return { status: r.status, env: decodePairs(r.stdout), stderr: r.stderr.toString('utf8') };
}

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('env-file parser: table of cases (bash vs dotenv.parse vs util.parseEnv)', () => {
  it('has at least 30 cases with unique names', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(30);
    expect(new Set(CASES.map((c) => c.name)).size).toBe(CASES.length);
  });

  it.each(CASES.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const file = writeEnv(c.text);
    const got = runBash(file);
    const fromDotenv = dotenvParse(c.text);
    const fromNode = nodeParse(c.text);

    if (isRefusal(c.bash)) {
      expect(c.dotenv, 'a refusal documents what dotenv.parse returns').toBeDefined();
      expect(fromDotenv).toEqual(sortEnv(c.dotenv!));
      expect(fromNode).toEqual(sortEnv(c.node ?? c.dotenv!));
      expect(got.status).toBe(1);
      expect(got.env).toEqual({});
      const lines = got.stderr.trimEnd().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(new RegExp(`^${escapeRe(file)}:${c.bash.refuse}: .+; .+`));
      expect(lines[0]).toMatch(c.bash.message);
    } else {
      expect(c.dotenv, 'accepted cases follow dotenv: no separate dotenv result').toBeUndefined();
      expect(got.stderr).toBe('');
      expect(got.status).toBe(0);
      expect(got.env).toEqual(sortEnv(c.bash));
      expect(fromDotenv).toEqual(sortEnv(c.bash));
      expect(fromNode).toEqual(sortEnv(c.node ?? c.bash));
    }
    expect(existsSync(join(work, 'CANARY')), 'nothing from the file was executed').toBe(false);
  });
});

describe('dg_env_load contract', () => {
  const run = (script: string, ...args: string[]) => {
    const r = spawnSync('bash', ['-c', `set -euo pipefail; source "$1"; shift; ${script}`, '_', PARTIAL, ...args], {
      cwd: work,
      env: bashEnv,
    });
    return { status: r.status, stdout: r.stdout.toString('utf8'), stderr: r.stderr.toString('utf8') };
  };
  const dump = 'for k in $(printf "%s\\n" "${!v[@]}" | sort); do printf "%s=%s;" "$k" "${v[$k]}"; done';

  it('assigns nothing when it refuses the file (all or nothing)', () => {
    const file = writeEnv('A=new\nB=2\nB.C=3\n');
    const r = run(`declare -A v=([KEEP]=1 [A]=old); rc=0; dg_env_load "$1" v || rc=$?; echo "rc=$rc"; ${dump}`, file);
    expect(r.stdout).toBe('rc=1\nA=old;KEEP=1;');
    expect(r.stderr).toMatch(new RegExp(`^${escapeRe(file)}:3: invalid key B\\.C; `));
  });

  it('overwrites keys the file sets and keeps the others on success', () => {
    const file = writeEnv('A=new\nB=2\n');
    const r = run(`declare -A v=([KEEP]=1 [A]=old); dg_env_load "$1" v; ${dump}`, file);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('A=new;B=2;KEEP=1;');
  });

  it('refuses a missing file with a message naming it', () => {
    const missing = join(work, 'no-such.env');
    const r = run('declare -A v; dg_env_load "$1" v', missing);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^${escapeRe(missing)}: cannot read the env file; `));
  });

  it('requires an associative array (usage error 2)', () => {
    const file = writeEnv('A=1\n');
    expect(run('declare -a v; dg_env_load "$1" v', file).status).toBe(2);
    expect(run('dg_env_load "$1" undeclared', file).status).toBe(2);
    expect(run('declare -A v; dg_env_load "$1" "v[\\$(touch CANARY)]"', file).status).toBe(2);
    expect(run('declare -A v; dg_env_load "$1"', file).status).toBe(2);
    expect(existsSync(join(work, 'CANARY'))).toBe(false);
  });

  it('does not depend on the caller\u2019s shell options and restores them', () => {
    const file = writeEnv('EXPORT A=1\n');
    const opts = 'shopt -s nocasematch nullglob failglob extglob; ';
    const r = run(`${opts} declare -A v; rc=0; dg_env_load "$1" v || rc=$?; echo "rc=$rc"; shopt -q nocasematch && echo restored`, file);
    expect(r.stdout).toBe('rc=1\nrestored\n');
    const ok = writeEnv('A=ü\u00a0b # c\nexport B="x"\n');
    const r2 = run(`${opts} declare -A v; dg_env_load "$1" v; ${dump}`, ok);
    expect(r2.stdout).toBe('A=ü\u00a0b;B=x;');
  });

  it('refuses and never executes a key that names an array element', () => {
    const file = writeEnv('x[$(touch CANARY)]=1\n');
    const r = run('declare -A v; dg_env_load "$1" v', file);
    expect(r.status).toBe(1);
    expect(existsSync(join(work, 'CANARY'))).toBe(false);
  });
});

describe('dg_env_file_mode_warning', () => {
  const warn = (file: string) =>
    spawnSync('bash', ['-c', 'set -euo pipefail; source "$1"; dg_env_file_mode_warning "$2"', '_', PARTIAL, file], {
      env: bashEnv,
    });

  it('is silent for mode 600', () => {
    const file = writeEnv('A=1\n');
    chmodSync(file, 0o600);
    const r = warn(file);
    expect(r.status).toBe(0);
    expect(r.stdout.toString()).toBe('');
  });

  it('warns for mode 644 and suggests chmod 600, without colour', () => {
    const file = writeEnv('A=1\n');
    chmodSync(file, 0o644);
    const r = warn(file);
    expect(r.status).toBe(0);
    const out = r.stdout.toString();
    expect(out.split('\n').filter(Boolean)).toHaveLength(1);
    expect(out).toContain(`chmod 600 ${file}`);
    expect(out).toContain('644');
    expect(out).not.toContain('\x1b');
  });

  it('quotes a file name with spaces in the suggested command', () => {
    const file = join(work, 'my env file');
    writeFileSync(file, 'A=1\n');
    chmodSync(file, 0o640);
    const out = warn(file).stdout.toString();
    expect(out).toContain(`chmod 600 ${work}/my\\ env\\ file`);
  });

  it('is silent for a missing file', () => {
    const r = warn(join(work, 'missing.env'));
    expect(r.status).toBe(0);
    expect(r.stdout.toString()).toBe('');
  });
});

describe('the partial itself', () => {
  it('passes shellcheck -s bash -S style', () => {
    const r = spawnSync('shellcheck', ['-s', 'bash', '-S', 'style', PARTIAL]);
    expect(r.error).toBeUndefined();
    expect(r.stdout.toString() + r.stderr.toString()).toBe('');
    expect(r.status).toBe(0);
  });

  it('contains no Handlebars opening braces and no eval/source', () => {
    const text = readFileSync(PARTIAL, 'utf8');
    expect(text).not.toContain('{{');
    const code = text
      .split('\n')
      .filter((l) => !l.trimStart().startsWith('#'))
      .join('\n');
    expect(code).not.toMatch(/\beval\b|\bsource\b|^\s*\.\s/m);
  });
});

// ---- property: env files written the way a careful user writes them ---------------------

/** Characters that stress the parsers, mixed with arbitrary code points. */
const SPECIAL = [
  ' ', '  ', '\t', '\n', '#', ' #', '=', '"', "'", '`', '\\', '\\n', '\\r', '\\t', 'n', 'r', '$', '$(touch CANARY)',
  '`touch CANARY`', '%s', '%', '{{', '}}', ';', '|', '&', '*', '?', '[', ']', '!', '~', 'é', '😀', '\u00a0', '\u2028',
  '\u2029', '\u3000', '\ufeff', '\v', '\f', 'export ', 'A=1', 'x',
];
const valueArb = fc
  .array(fc.oneof({ arbitrary: fc.constantFrom(...SPECIAL), weight: 3 }, { arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 3 }), weight: 2 }), { maxLength: 8 })
  .map((parts) => parts.join(''))
  // no NUL or CR (no env file can carry them through both parsers) and valid UTF-16 only
  .filter((v) => !/[\0\r]/.test(v) && Buffer.from(v, 'utf8').toString('utf8') === v);
const keyArb = fc.oneof(fc.constantFrom('A', 'B', 'API_KEY', '_x', 'export'), fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,10}$/)).filter((k) => k !== '__proto__');

type Quote = 'none' | "'" | '"' | '`';
/** How a careful user writes a value: bare when nothing in it is special, else in a quote that can hold it. */
function writeValue(v: string, prefer: Quote | 'auto', newlineEscape: boolean): { text: string; quoted: boolean } | null {
  const bare = !/[#\n\u2028\u2029]/.test(v) && !/^['"`]/.test(v) && v === v.trim();
  const single = !v.includes("'") && !v.endsWith('\\');
  const double = !v.includes('"') && !v.includes('\\n') && !v.includes('\\r') && !v.endsWith('\\');
  const backtick = !v.includes('`') && !v.endsWith('\\');
  const order: Quote[] = prefer === 'auto' ? ['none', "'", '"', '`'] : [prefer, 'none', "'", '"', '`'];
  for (const q of order) {
    if (q === 'none' && bare) return { text: v, quoted: false };
    if (q === "'" && single) return { text: `'${v}'`, quoted: true };
    if (q === '`' && backtick) return { text: `\`${v}\``, quoted: true };
    if (q === '"' && double) return { text: `"${newlineEscape ? v.replace(/\n/g, '\\n') : v}"`, quoted: true };
  }
  return null;
}

const entryArb = fc.record({
  key: keyArb,
  value: valueArb,
  exported: fc.boolean(),
  indent: fc.constantFrom('', '  '),
  beforeEq: fc.constantFrom('', ' '),
  afterEq: fc.constantFrom('', ' ', '  '),
  prefer: fc.constantFrom<Quote | 'auto'>('auto', 'auto', 'none', "'", '"', '`'),
  newlineEscape: fc.boolean(),
  trailing: fc.constantFrom('', '', '  ', ' # comment', '#c', ' # it\'s "x" = y'),
  trailingQuoted: fc.constantFrom('', '\t', '\t# tab comment', ' #c'),
});
const lineArb = fc.oneof(
  { arbitrary: entryArb.map((e) => ({ kind: 'entry' as const, ...e })), weight: 6 },
  { arbitrary: fc.constantFrom('', '# comment', '#K=v', '# x = "y', '#').map((text) => ({ kind: 'raw' as const, text })), weight: 1 },
);
const fileArb = fc
  .record({ lines: fc.array(lineArb, { maxLength: 8 }), crlf: fc.boolean(), finalNewline: fc.boolean() })
  .map(({ lines, crlf, finalNewline }) => {
    const out: string[] = [];
    for (const l of lines) {
      if (l.kind === 'raw') {
        out.push(l.text);
        continue;
      }
      const written = writeValue(l.value, l.prefer, l.newlineEscape);
      if (written === null) continue;
      out.push(
        `${l.indent}${l.exported ? 'export ' : ''}${l.key}${l.beforeEq}=${l.afterEq}${written.text}` +
          (written.quoted ? l.trailingQuoted : l.trailing),
      );
    }
    let text = out.join('\n') + (finalNewline ? '\n' : '');
    if (crlf) text = text.replace(/\n/g, '\r\n');
    return text;
  });

/** One bash process parses a whole batch of files: `ok\0N\0k\0v\0...` or `refused\0` per file. */
function runBashBatch(files: string[]): Array<Env | { refused: true }> {
  const script =
    'set -euo pipefail; source "$1"; shift; for f in "$@"; do unset v; declare -A v=(); ' +
    'if dg_env_load "$f" v 2>/dev/null; then printf "ok\\0%s\\0" "${#v[@]}"; ' +
    'for k in "${!v[@]}"; do printf "%s\\0%s\\0" "$k" "${v[$k]}"; done; else printf "refused\\0"; fi; done';
  const r = spawnSync('bash', ['-c', script, '_', PARTIAL, ...files], { cwd: work, env: bashEnv, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`batch bash failed: ${r.stderr.toString()}`);
  const parts = r.stdout.toString('utf8').split('\0');
  const results: Array<Env | { refused: true }> = [];
  let i = 0;
  while (results.length < files.length) {
    const tag = parts[i++];
    if (tag === 'refused') {
      results.push({ refused: true });
    } else if (tag === 'ok') {
      const n = Number(parts[i++]);
      const env: Env = {};
      for (let j = 0; j < n; j++) env[parts[i++]!] = parts[i++]!;
      results.push(sortEnv(env));
    } else {
      throw new Error(`unexpected batch output at token ${i}: ${String(tag)}`);
    }
  }
  return results;
}

const BATCH = 100;
const RUNS = Number(process.env.ENV_PARSER_PROPERTY_RUNS ?? 30);

/**
 * Node's readings of a file, one of which must match dotenv's. util.parseEnv misreads a comment on
 * the last line when no newline ends it ("#KEY=v" gives a key "#KEY", "#=`=" a key "`"); dotenv
 * and the bash parser ignore that line (the documented divergence). So the file is read as is
 * (minus "#" keys) and without a final unterminated comment line (which may also be the end of a
 * quoted value, hence both readings).
 */
function nodeReadings(text: string): Record<string, string>[] {
  const asIs = Object.fromEntries(Object.entries(nodeParse(text)).filter(([k]) => !k.startsWith('#')));
  const match = /(^|\n)[ ]*#[^\n]*$/.exec(text);
  return match ? [asIs, nodeParse(text.slice(0, match.index + match[1]!.length))] : [asIs];
}

describe('property: careful env files parse the same in bash, dotenv and util.parseEnv', () => {
  it(`${BATCH * RUNS} generated files, ${BATCH} per bash process`, () => {
    fc.assert(
      fc.property(fc.array(fileArb, { minLength: BATCH, maxLength: BATCH }), (texts) => {
        const files = texts.map((t) => writeEnv(t));
        const results = runBashBatch(files);
        texts.forEach((text, idx) => {
          const expected = dotenvParse(text);
          expect(results[idx], JSON.stringify(text)).toEqual(expected);
          // util.parseEnv agrees too, apart from the documented `#KEY=v` last-line quirk.
          expect(nodeReadings(text), JSON.stringify(text)).toContainEqual(expected);
        });
        expect(existsSync(join(work, 'CANARY'))).toBe(false);
      }),
      { numRuns: RUNS },
    );
  }, 30_000 + RUNS * 1_000); // ~0.1 s per batch; the margin covers shrinking a failure
});

// ---- property: arbitrary text, accepted only when all three parsers agree ------------------

const NOISE = [
  'A', 'B', 'export', ' ', '  ', '\t', '\n', '\r\n', '\r', '=', '#', ' #', '"', "'", '`', '\\', '\\n', '\\r', '$(touch CANARY)',
  'x', 'é', '\u00a0', '\u2028', '\ufeff', '.', '-', ':', '1', '_',
];
const noiseFileArb = fc
  .array(fc.oneof({ arbitrary: fc.constantFrom(...NOISE), weight: 5 }, { arbitrary: fc.string({ unit: 'binary', maxLength: 2 }), weight: 1 }), { maxLength: 40 })
  .map((parts) => parts.join(''))
  .filter((t) => !t.includes('\0') && Buffer.from(t, 'utf8').toString('utf8') === t);

describe('property: whatever bash accepts, dotenv and util.parseEnv read the same way', () => {
  it(`${BATCH * RUNS} noisy files, ${BATCH} per bash process`, () => {
    let accepted = 0;
    fc.assert(
      fc.property(fc.array(noiseFileArb, { minLength: BATCH, maxLength: BATCH }), (texts) => {
        const results = runBashBatch(texts.map((t) => writeEnv(t)));
        texts.forEach((text, idx) => {
          const got = results[idx]!;
          if ('refused' in got) return;
          accepted += 1;
          const expected = dotenvParse(text);
          expect(got, JSON.stringify(text)).toEqual(expected);
          expect(nodeReadings(text), JSON.stringify(text)).toContainEqual(expected);
        });
        expect(existsSync(join(work, 'CANARY'))).toBe(false);
      }),
      { numRuns: RUNS },
    );
    // The generator must exercise the accepting side too, not only refusals.
    expect(accepted).toBeGreaterThan(BATCH * RUNS * 0.1);
  }, 30_000 + RUNS * 1_000);
});
