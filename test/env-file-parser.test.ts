/**
 * The env-file reader of the generated scripts: templates/scripts/deploygen-helper.cjs, run for
 * real (`node deploygen-helper.cjs env-check|env-values ...`). It reads files with Node's
 * util.parseEnv, the function the generated ecosystem file uses, after refusing what
 * util.parseEnv would misread. So util.parseEnv is the oracle: every accepted table case states
 * the values util.parseEnv returns and env-values must print them byte for byte; every refused
 * case states the line and reason, and (where it misreads) what util.parseEnv would have returned.
 * dotenv.parse appears only where its reading differs in a way people used to dotenv should know.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseEnv } from 'node:util';
import dotenv from 'dotenv';
import fc from 'fast-check';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const HELPER = join(ROOT, 'templates', 'scripts', 'deploygen-helper.cjs');

type Env = Record<string, string>;
type Refusal = { line: number; message: RegExp };
type Case = {
  name: string;
  text: string;
  /** Accepted: what util.parseEnv returns and env-values prints. Refused: the line and the reason. */
  expect: Env | Refusal;
  /** For a refusal: what util.parseEnv would have read (when it reads something else than the author meant). */
  node?: Env;
  /** What dotenv.parse returns, where it differs from util.parseEnv on an accepted file. */
  dotenv?: Env;
};

const refuse = (line: number, message: RegExp): Refusal => ({ line, message });
const isRefusal = (r: Env | Refusal): r is Refusal => 'message' in r;

const CASES: Case[] = [
  // ---- accepted: env-values prints exactly what util.parseEnv reads ----------------------
  { name: 'plain KEY=value lines', text: 'A=1\nB=hello world\n', expect: { A: '1', B: 'hello world' } },
  { name: 'export prefix', text: 'export A=1\nexport B="x y"\n', expect: { A: '1', B: 'x y' } },
  { name: 'spaces around = and the value are trimmed', text: 'A = 1\nB  =   two words   \n', expect: { A: '1', B: 'two words' } },
  { name: 'spaces before the key', text: '   A=1\n  export B=2\n', expect: { A: '1', B: '2' } },
  { name: 'full-line comments and blank lines', text: '# top\n\nA=1\n\n\n# A=2\n#B=3\n#\nC=4\n', expect: { A: '1', C: '4' } },
  {
    name: 'inline comments end unquoted values, with or without a space before #',
    text: 'A=value # comment\nB=value#nospace\nC= # only a comment\nD=#\n',
    expect: { A: 'value', B: 'value', C: '', D: '' },
  },
  { name: '# inside quotes is kept', text: 'A="a # b"\nB=\'#x\'\nC=`x#y`\n', expect: { A: 'a # b', B: '#x', C: 'x#y' } },
  { name: 'single quotes are literal', text: "A='a\\nb $HOME \\t \\\\ x'\n", expect: { A: 'a\\nb $HOME \\t \\\\ x' } },
  {
    name: 'double quotes: \\n becomes a newline, \\t \\\\ and others stay as written',
    text: 'A="l1\\nl2"\nB="tab\\there"\nC="back\\\\nslash"\nD="\\n"\n',
    expect: { A: 'l1\nl2', B: 'tab\\there', C: 'back\\\nslash', D: '\n' },
  },
  {
    name: '\\r in a double-quoted value stays as written',
    text: 'A="C:\\repo"\n',
    expect: { A: 'C:\\repo' },
    dotenv: { A: 'C:\repo' },
  },
  { name: 'backtick quotes are literal', text: 'A=`it\'s "quoted" \\n`\n', expect: { A: 'it\'s "quoted" \\n' } },
  { name: '= inside values', text: 'A=b=c\nB="x=y"\nC==\n', expect: { A: 'b=c', B: 'x=y', C: '=' } },
  { name: 'empty values', text: "A=\nB=\"\"\nC=''\nD=``\nE=   \nF=", expect: { A: '', B: '', C: '', D: '', E: '', F: '' } },
  { name: 'CRLF line endings', text: 'A=1\r\nB="x"\r\n\r\n# c\r\nC=3 # c\r\nD=\r\n', expect: { A: '1', B: 'x', C: '3', D: '' } },
  { name: 'multi-line double-quoted value (\\n expanded too)', text: 'A="l1\nl2\\nl3\n  l4  "\nB=2\n', expect: { A: 'l1\nl2\nl3\n  l4  ', B: '2' } },
  {
    name: 'multi-line single-quoted value keeps #, = and blank lines',
    text: "A='l1\n# not a comment\n\n  \nB=2'\nC=3\n",
    expect: { A: 'l1\n# not a comment\n\n  \nB=2', C: '3' },
  },
  { name: 'multi-line backtick value', text: 'A=`line 1\nline "2"`  # c\nB=2', expect: { A: 'line 1\nline "2"', B: '2' } },
  { name: 'multi-line value with CRLF reads LF', text: 'A="l1\r\nl2"\r\nB=\'x\r\ny\'\r\n', expect: { A: 'l1\nl2', B: 'x\ny' } },
  { name: 'later duplicates override earlier ones', text: 'A=1\nB=x\nA=2\nB=\n', expect: { A: '2', B: '' } },
  {
    name: 'unicode values',
    text: 'A=ü€😀\nB="日本語 テキスト"\nC=a\u00a0b\nD="x\u2028y"\n',
    expect: { A: 'ü€😀', B: '日本語 テキスト', C: 'a\u00a0b', D: 'x\u2028y' },
  },
  {
    name: 'U+2028 in a comment is part of the comment',
    text: '# note\u2028B=1\nA=2\n',
    expect: { A: '2' },
    dotenv: { A: '2', B: '1' },
  },
  { name: 'U+2028 in an unquoted value is kept', text: 'A=x\u2028`y`\n', expect: { A: 'x\u2028`y`' }, dotenv: { A: 'x\u2028y' } },
  {
    name: '$(...) in values is data (canary)',
    text: "A=$(touch CANARY)\nB=\"$(touch CANARY)\"\nC='$(touch CANARY)'\nD=${IFS}$PATH;touch CANARY\n",
    expect: { A: '$(touch CANARY)', B: '$(touch CANARY)', C: '$(touch CANARY)', D: '${IFS}$PATH;touch CANARY' },
  },
  {
    name: 'backticks in values are data (canary)',
    text: 'A=`touch CANARY`\nB=x`touch CANARY`y\nC="`touch CANARY`"\nD=\'; touch CANARY; echo \'\n',
    expect: { A: 'touch CANARY', B: 'x`touch CANARY`y', C: '`touch CANARY`', D: '; touch CANARY; echo ' },
  },
  {
    name: 'backslashes in unquoted values (also at the end)',
    text: 'A=C:\\dir\\file\nB=a\\\\b\nC=ends\\\nD=\\n\n',
    expect: { A: 'C:\\dir\\file', B: 'a\\\\b', C: 'ends\\', D: '\\n' },
  },
  {
    name: 'backslash before the closing quote is literal',
    text: 'A="a\\\\" # q"\nB=\'x\\\'\n',
    expect: { A: 'a\\\\', B: 'x\\' },
    dotenv: { A: 'a\\\\" # q', B: 'x\\' },
  },
  { name: '% in values (no printf format)', text: 'A=100%\nB=%s%n%d%%\nC="%x %q"\n', expect: { A: '100%', B: '%s%n%d%%', C: '%x %q' } },
  { name: 'Handlebars braces in values', text: 'A={{x}}\nB="{{ y }}"\nC={{{z}}}\n', expect: { A: '{{x}}', B: '{{ y }}', C: '{{{z}}}' } },
  { name: 'tabs inside values are kept', text: "A=a\tb\nB=\"\tpadded\t\"\nC='\t'\n", expect: { A: 'a\tb', B: '\tpadded\t', C: '\t' } },
  {
    name: 'tabs and other non-space whitespace at the ends of an unquoted value are kept',
    text: 'A=1\t\nB=x\t# c\nC=\t"x"\nD=abc\u00a0\nE=\u3000abc\n',
    expect: { A: '1\t', B: 'x\t', C: '\t"x"', D: 'abc\u00a0', E: '\u3000abc' },
    dotenv: { A: '1', B: 'x', C: 'x', D: 'abc', E: 'abc' },
  },
  { name: 'missing trailing newline', text: 'A=1\nB=last', expect: { A: '1', B: 'last' } },
  { name: 'missing trailing newline after a quoted value', text: 'A="x y"', expect: { A: 'x y' } },
  { name: 'a comment without = as the last line, no final newline', text: 'A=1\n# the end', expect: { A: '1' } },
  {
    name: 'quotes inside unquoted values are literal',
    text: 'A=it\'s\nB=say "hi"\nC=x`y\nD=end\'\n',
    expect: { A: "it's", B: 'say "hi"', C: 'x`y', D: "end'" },
  },
  {
    name: 'other quote characters inside quoted values',
    text: 'A="it\'s"\nB=\'say "hi"\'\nC="`"\nD=`\'`\n',
    expect: { A: "it's", B: 'say "hi"', C: '`', D: "'" },
  },
  {
    name: 'spaces, tabs and a comment after the closing quote',
    text: 'A="x"   \nB=\'y\'\t# c\nC=`z`#c\nD="w" # it\'s "fine"\n',
    expect: { A: 'x', B: 'y', C: 'z', D: 'w' },
  },
  { name: 'whitespace inside quotes is kept', text: 'A="  padded  "\nB=\'  \'\n', expect: { A: '  padded  ', B: '  ' } },
  { name: 'export as a key name', text: 'export=1\nexport export=2\nexport =3\n', expect: { export: '3' } },
  { name: 'empty file', text: '', expect: {} },
  { name: 'only comments and blank lines', text: '# a\n\n#b=c\n\n', expect: {} },
  { name: 'lower case, underscores and digits in keys', text: '_a1=x\nlower_case=y\nA_2_B=z\n', expect: { _a1: 'x', lower_case: 'y', A_2_B: 'z' } },

  // ---- refused: util.parseEnv would read something else than the author wrote -------------
  { name: 'REFUSED line without = (glued onto the next key)', text: 'A=1\nNOEQ\nB=2\n', expect: refuse(2, /no '='/), node: { A: '1', 'NOEQ\nB': '2' } },
  { name: 'REFUSED KEY: value', text: 'A: b\n', expect: refuse(1, /no '='/), node: {} },
  { name: 'REFUSED export KEY without a value', text: 'export A\nB=1\n', expect: refuse(1, /no '='/), node: { 'A\nB': '1' } },
  { name: 'REFUSED a quoted value on the line after KEY=', text: 'A=\n"B"\n', expect: refuse(2, /no '='/), node: { A: '' } },
  { name: 'REFUSED whitespace-only line (glued onto the next key)', text: 'A=1\n  \nB=2\n', expect: refuse(2, /only spaces or tabs/), node: { A: '1', '\nB': '2' } },
  { name: 'REFUSED tab-only line', text: 'A=1\n\t\nB=2\n', expect: refuse(2, /only spaces or tabs/), node: { A: '1', '\t\nB': '2' } },
  { name: 'REFUSED indented comment (the next key is lost)', text: 'A=1\n  # note\nB=2\n', expect: refuse(2, /indented comment/), node: { A: '1', '# note\nB': '2' } },
  {
    name: 'REFUSED a comment with = as the last line without a final newline',
    text: 'A=1\n#B=2',
    expect: refuse(2, /last line without a final newline/),
    node: { A: '1', '#B': '2' },
  },
  { name: 'REFUSED empty key (util.parseEnv stops reading there)', text: 'A=1\n=x\nB=2\n', expect: refuse(2, /no key/), node: { A: '1' } },
  { name: 'REFUSED tab before the key', text: '\tA=1\n', expect: refuse(1, /invalid key "\\tA"/), node: { '\tA': '1' } },
  { name: 'REFUSED tab between the key and =', text: 'A\t=1\n', expect: refuse(1, /invalid key "A\\t"/), node: { 'A\t': '1' } },
  { name: 'REFUSED two spaces after export', text: 'export  A=1\n', expect: refuse(1, /invalid key " A"/), node: { ' A': '1' } },
  { name: 'REFUSED tab after export', text: 'export\tA=1\n', expect: refuse(1, /invalid key "export\\tA"/), node: { 'export\tA': '1' } },
  { name: 'REFUSED non-ASCII key', text: 'KÉY=1\n', expect: refuse(1, /invalid key "KÉY"/), node: { KÉY: '1' } },
  { name: 'REFUSED space inside the key', text: 'A B=1\n', expect: refuse(1, /invalid key "A B"/), node: { 'A B': '1' } },
  { name: 'REFUSED key with a dot', text: 'A.B=1\n', expect: refuse(1, /invalid key/), node: { 'A.B': '1' } },
  { name: 'REFUSED key with a dash', text: 'A=0\nmy-key=1\n', expect: refuse(2, /invalid key/), node: { A: '0', 'my-key': '1' } },
  { name: 'REFUSED key starting with a digit', text: '1A=x\n', expect: refuse(1, /invalid key/), node: { '1A': 'x' } },
  {
    name: 'REFUSED shell code as a key (canary)',
    text: 'a[$(touch CANARY)]=1\n$(touch CANARY)=2\n',
    expect: refuse(1, /invalid key/),
    node: { 'a[$(touch CANARY)]': '1', '$(touch CANARY)': '2' },
  },
  { name: 'REFUSED the key __proto__ (util.parseEnv drops it)', text: '__proto__=x\nA=1\n', expect: refuse(1, /__proto__/), node: { A: '1' } },
  { name: 'REFUSED UTF-8 byte order mark', text: '\ufeffA=1\n', expect: refuse(1, /byte order mark/), node: { '\ufeffA': '1' } },
  { name: 'REFUSED lone carriage return', text: 'A=x\rB=y\n', expect: refuse(1, /carriage return/), node: { A: 'xB=y' } },
  { name: 'REFUSED lone carriage return inside quotes', text: "A=1\nB='a\rb'\n", expect: refuse(2, /carriage return/), node: { A: '1', B: 'ab' } },
  { name: 'REFUSED CRLF and LF line endings mixed', text: 'A=1\r\nB=2\nC=3\r\n', expect: refuse(2, /mixes CRLF and LF/), node: { A: '1', B: '2', C: '3' } },
  { name: 'REFUSED text after the closing quote', text: "A='x' junk\n", expect: refuse(1, /text after the closing '/), node: { A: 'x' } },
  { name: 'REFUSED two quoted strings in a row', text: 'A="x""y"\n', expect: refuse(1, /text after the closing "/), node: { A: 'x' } },
  { name: 'REFUSED empty quotes followed by text', text: "A=''x\n", expect: refuse(1, /text after the closing '/), node: { A: '' } },
  { name: 'REFUSED backslash-escaped quote (no escapes in quotes)', text: 'A="a\\"b"\n', expect: refuse(1, /text after the closing "/), node: { A: 'a\\' } },
  {
    name: 'REFUSED text after a multi-line closing quote (names both lines)',
    text: 'A="a\nb" junk\nC=1\n',
    expect: refuse(2, /opened with " on line 1/),
    node: { A: 'a\nb', C: '1' },
  },
  {
    name: 'REFUSED unterminated quote closed by a later value (names both lines)',
    text: 'A="abc\nB="x"\n',
    expect: refuse(2, /opened with " on line 1/),
    node: { A: 'abc\nB=' },
  },
  { name: 'REFUSED unterminated double quote', text: 'A="abc\nB=1\n', expect: refuse(1, /opens with " but never closes/), node: { A: '"abc', B: '1' } },
  { name: 'REFUSED unterminated single quote at the end of the file', text: "A='abc", expect: refuse(1, /never closes/), node: {} },
  { name: 'REFUSED NUL byte', text: 'A=1\nB=x\0y\n', expect: refuse(2, /NUL byte/), node: { A: '1', B: 'x\0y' } },
  {
    name: 'REFUSED all or nothing: good lines before a bad one',
    text: 'A=1\nB="two"\nC=3\n\nbad key=4\nD=5\n',
    expect: refuse(5, /invalid key/),
    node: { A: '1', B: 'two', C: '3', D: '5', 'bad key': '4' },
  },
];

const sortEnv = (e: Record<string, string>): Env =>
  Object.fromEntries(Object.entries(e).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
const nodeParse = (text: string): Env => sortEnv(parseEnv(text) as Env);

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

function writeEnv(text: string | Buffer, mode = 0o600): string {
  seq += 1;
  const file = join(work, `case-${seq}.env`);
  writeFileSync(file, text, { mode });
  chmodSync(file, mode);
  return file;
}

type Run = { status: number | null; stdout: Buffer; stderr: string; lines: string[] };

/** Runs the helper in the scratch folder (where a CANARY would land); `as` runs it as another user. */
function helper(args: string[], as?: string[]): Run {
  const command = [...(as ?? []), process.execPath, HELPER, ...args];
  const r = spawnSync(command[0]!, command.slice(1), { cwd: work });
  const stderr = r.stderr.toString('utf8');
  return { status: r.status, stdout: r.stdout, stderr, lines: stderr === '' ? [] : stderr.replace(/\n$/, '').split('\n') };
}

/** env-values records in the order printed: `KEY=VALUE\0`... */
function records(stdout: Buffer): Array<[string, string]> {
  const text = stdout.toString('utf8');
  expect(text === '' || text.endsWith('\0'), 'every record ends with NUL').toBe(true);
  return text
    .split('\0')
    .slice(0, -1)
    .map((r) => [r.slice(0, r.indexOf('=')), r.slice(r.indexOf('=') + 1)]);
}
const valuesOf = (stdout: Buffer): Env => sortEnv(Object.fromEntries(records(stdout)));

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** Every stderr line is one diagnostic of the protocol. */
const expectProtocol = (lines: string[]) => lines.forEach((l) => expect(l).toMatch(/^(error|warning|fix)\t[^\t]+$/));

describe('env files: table of cases (env-values against util.parseEnv)', () => {
  it('has at least 60 cases with unique names', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(60);
    expect(new Set(CASES.map((c) => c.name)).size).toBe(CASES.length);
  });

  it.each(CASES.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const file = writeEnv(c.text);
    const values = helper(['env-values', file]);
    if (isRefusal(c.expect)) {
      if (c.node !== undefined) expect(nodeParse(c.text), 'what util.parseEnv would read').toEqual(sortEnv(c.node));
      for (const r of [values, helper(['env-check', file, ''])]) {
        expect(r.status).toBe(1);
        expect(r.stdout.length).toBe(0);
        expect(r.lines).toHaveLength(2);
        expectProtocol(r.lines);
        expect(r.lines[0]).toMatch(new RegExp(`^error\\t${escapeRe(file)}:${c.expect.line}: `));
        expect(r.lines[0]).toMatch(c.expect.message);
        expect(r.lines[1]).toMatch(/^fix\t/);
      }
    } else {
      expect(c.node).toBeUndefined();
      expect(nodeParse(c.text)).toEqual(sortEnv(c.expect));
      expect(values.stderr).toBe('');
      expect(values.status).toBe(0);
      expect(valuesOf(values.stdout)).toEqual(sortEnv(c.expect));
      if (c.dotenv !== undefined) expect(sortEnv(dotenv.parse(c.text)), 'dotenv reads this differently').toEqual(sortEnv(c.dotenv));
    }
    expect(existsSync(join(work, 'CANARY')), 'nothing from the file was executed').toBe(false);
  });
});

describe('env-values', () => {
  it('prints only the KEYs named, in the order named, and nothing for an unset KEY', () => {
    const file = writeEnv('A=1\nB="two\nlines"\nC=\n');
    const r = helper(['env-values', file, 'C', 'UNSET', 'B', 'A']);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
    expect(records(r.stdout)).toEqual([['C', ''], ['B', 'two\nlines'], ['A', '1']]);
  });

  it("gives bash records it reads with read -r -d '' (values with newlines, =, quotes and $ intact)", () => {
    const file = writeEnv('A="l1\nl2 = $(x) \'q\'"\nB=`\\\\ \\n`\n');
    const script = `while IFS= read -r -d '' rec; do printf '[%s]=[%s]\\n' "\${rec%%=*}" "\${rec#*=}"; done < <(node "$1" env-values "$2")`;
    const r = spawnSync('bash', ['-c', script, '_', HELPER, file], { cwd: work });
    expect(r.stderr.toString()).toBe('');
    expect(r.stdout.toString()).toBe("[A]=[l1\nl2 = $(x) 'q']\n[B]=[\\\\ \\n]\n");
  });

  it('refuses a missing file like env-check, with nothing on stdout', () => {
    const missing = join(work, 'missing.env');
    const r = helper(['env-values', missing, 'A']);
    expect(r.status).toBe(1);
    expect(r.stdout.length).toBe(0);
    expect(r.lines).toEqual([`error\t${missing} is missing`, `fix\tcreate it, set its values, then chmod 600 ${missing}`]);
  });

  it('refuses bytes that are not UTF-8 (util.parseEnv would read U+FFFD) and keeps a real U+FFFD', () => {
    const latin1 = writeEnv(Buffer.from('A=1\nB=caf\xe9\n', 'latin1'));
    expect(parseEnv(readFileSync(latin1, 'utf8'))).toEqual({ A: '1', B: 'caf\ufffd' });
    const r = helper(['env-values', latin1]);
    expect(r.status).toBe(1);
    expect(r.lines[0]).toBe(`error\t${latin1}:2: is not UTF-8 text (util.parseEnv reads U+FFFD instead)`);
    const real = helper(['env-values', writeEnv('A=\ufffd ok\n')]);
    expect([real.status, records(real.stdout)]).toEqual([0, [['A', '\ufffd ok']]]);
  });

  it('does not warn about the mode (env-check does)', () => {
    const r = helper(['env-values', writeEnv('A=1\n', 0o644)]);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
  });
});

describe('env-check', () => {
  const example = (text: string) => writeEnv(text);

  it('accepts a file that sets every KEY to a real value, silently', () => {
    const file = writeEnv('API_KEY=real\nOTHER=x\n');
    const r = helper(['env-check', file, example('API_KEY=changeme\n'), 'API_KEY', 'OTHER']);
    expect([r.status, r.stderr, r.stdout.length]).toEqual([0, '', 0]);
  });

  it('names every KEY that is unset, empty, or still has the example value', () => {
    const file = writeEnv('EMPTY=\nSAME=changeme\nGOOD=real\n');
    const ex = example('SAME=changeme\nGOOD=changeme\nEMPTY=\n');
    const r = helper(['env-check', file, ex, 'UNSET', 'EMPTY', 'SAME', 'GOOD']);
    expect(r.status).toBe(1);
    expect(r.stdout.length).toBe(0);
    expect(r.lines).toEqual([
      `error\t${file}: UNSET is not set`,
      `fix\tset UNSET=<the real value> in ${file}`,
      `error\t${file}: EMPTY is empty`,
      `fix\tset EMPTY=<the real value> in ${file}`,
      `error\t${file}: SAME still has the example's placeholder value from ${ex}`,
      `fix\tset SAME=<the real value> in ${file}`,
    ]);
  });

  it('compares with the example by value as util.parseEnv reads both files', () => {
    const file = writeEnv('A="x # y"\nB=\'multi\nline\'\n');
    const ex = example("A='x # y' # same value, other quotes\nB=\"multi\\nline\"\n");
    const r = helper(['env-check', file, ex, 'A', 'B']);
    expect(r.status).toBe(1);
    expect(r.lines.filter((l) => l.startsWith('error'))).toEqual([
      `error\t${file}: A still has the example's placeholder value from ${ex}`,
      `error\t${file}: B still has the example's placeholder value from ${ex}`,
    ]);
  });

  it('compares nothing without an example, or when the example is missing', () => {
    const file = writeEnv('A=changeme\n');
    expect(helper(['env-check', file, '', 'A']).stderr).toBe('');
    const r = helper(['env-check', file, join(work, 'no.example'), 'A']);
    expect([r.status, r.stderr]).toEqual([0, '']);
  });

  it('warns, and compares nothing, when the example itself is refused', () => {
    const file = writeEnv('A=changeme\n');
    const ex = example('A=changeme\nbad key=1\n');
    const r = helper(['env-check', file, ex, 'A']);
    expect(r.status).toBe(0);
    expect(r.lines).toEqual([`warning\t${ex}:2: invalid key "bad key": a shell or PM2 cannot carry it; example values are not compared`]);
  });

  it('suggests creating a missing file from its example', () => {
    const missing = join(work, 'missing.env');
    const ex = example('A=x\n');
    const r = helper(['env-check', missing, ex, 'A']);
    expect(r.status).toBe(1);
    expect(r.lines).toEqual([
      `error\t${missing} is missing`,
      `fix\tcreate it from its example (cp ${ex} ${missing}), set its values, then chmod 600 ${missing}`,
    ]);
  });

  it('says a folder is not an env file', () => {
    const r = helper(['env-check', work, '']);
    expect(r.status).toBe(1);
    expect(r.lines[0]).toBe(`error\t${work} cannot be read: it is a folder`);
  });

  it.each([
    [0o644, '0644'],
    [0o640, '0640'],
    [0o604, '0604'],
  ])('warns that mode %o lets group or others read it and suggests chmod 600 (exit 0)', (mode, shown) => {
    const file = writeEnv('A=1\n', mode);
    const r = helper(['env-check', file, '', 'A']);
    expect(r.status).toBe(0);
    expect(r.lines).toEqual([`warning\t${file} is readable by group or others (mode ${shown})`, `fix\tchmod 600 ${file}`]);
  });

  it('does not warn for modes 600 and 400', () => {
    expect(helper(['env-check', writeEnv('A=1\n', 0o600), '']).stderr).toBe('');
    expect(helper(['env-check', writeEnv('A=1\n', 0o400), '']).stderr).toBe('');
  });

  it('warns and refuses together: missing KEY plus mode, then exit 1', () => {
    const file = writeEnv('A=1\n', 0o644);
    const r = helper(['env-check', file, '', 'B']);
    expect(r.status).toBe(1);
    expect(r.lines.map((l) => l.split('\t')[0])).toEqual(['error', 'fix', 'warning', 'fix']);
  });
});

describe('missing vs unreadable, as a user other than the owner', () => {
  /** Tests run as root, who reads every file: the helper runs as nobody (or as the current user when not root). */
  const asOther = process.getuid?.() === 0 ? ['runuser', '-u', 'nobody', '--'] : [];
  const other = process.getuid?.() === 0 ? 'nobody' : (process.env.USER ?? '');
  let open: string;
  let closed: string;

  beforeAll(() => {
    open = join(work, 'open');
    closed = join(work, 'closed');
    mkdirSync(open, { mode: 0o755 });
    mkdirSync(closed, { mode: 0o700 });
    chmodSync(work, 0o755);
    chmodSync(open, 0o755);
    writeFileSync(join(open, 'secret.env'), 'A=1\n', { mode: 0o600 });
    chmodSync(join(open, 'secret.env'), process.getuid?.() === 0 ? 0o600 : 0o000);
    writeFileSync(join(closed, 'app.env'), 'A=1\n');
  });

  it('says "is missing" for a file that does not exist', () => {
    const file = join(open, 'absent.env');
    const r = helper(['env-check', file, '', 'A'], asOther);
    expect(r.status).toBe(1);
    expect(r.lines[0]).toBe(`error\t${file} is missing`);
  });

  it('says who cannot read it, why, and its mode and owner', () => {
    const file = join(open, 'secret.env');
    const mode = process.getuid?.() === 0 ? '0600' : '0000';
    const owner = process.getuid?.() === 0 ? 'root' : other;
    for (const sub of [['env-check', file, ''], ['env-values', file]]) {
      const r = helper(sub, asOther);
      expect(r.status).toBe(1);
      expect(r.stdout.length).toBe(0);
      expectProtocol(r.lines);
      expect(r.lines[0]).toBe(`error\t${file} cannot be read by user ${other}: permission denied (mode ${mode}, owner ${owner})`);
      expect(r.lines[1]).toMatch(/^fix\tlet .+ read it/);
    }
  });

  it('says so when a folder on the path cannot be entered', () => {
    if (asOther.length === 0) chmodSync(closed, 0o000);
    const file = join(closed, 'app.env');
    const r = helper(['env-check', file, ''], asOther);
    expect(r.status).toBe(1);
    expect(r.lines[0]).toBe(`error\t${file} cannot be read by user ${other}: permission denied (a folder on its path cannot be entered)`);
    chmodSync(closed, 0o700);
  });
});

describe('diagnostics protocol', () => {
  it.each([
    [[], /^error\tusage: node deploygen-helper\.cjs \(env-check FILE EXAMPLE \[KEY\.\.\.\] \| env-values FILE \[KEY\.\.\.\]( \| .+)?\)$/],
    [['no-such-command', 'x'], /^error\tusage: /],
    [['env-check', 'f'], /^error\tusage: node deploygen-helper\.cjs env-check FILE EXAMPLE \[KEY\.\.\.\]$/],
    [['env-values'], /^error\tusage: node deploygen-helper\.cjs env-values FILE \[KEY\.\.\.\]$/],
    [['env-values', ''], /^error\tusage: /],
    [['env-values', 'f', 'BAD-KEY'], /^error\tenv-values: "BAD-KEY" is not a KEY name/],
    [['env-check', 'f', '', '$(touch CANARY)'], /^error\tenv-check: "\$\(touch CANARY\)" is not a KEY name/],
    [['__proto__'], /^error\tusage: /],
  ])('usage error %j: one error line, exit 2', (args, message) => {
    const r = helper(args);
    expect(r.status).toBe(2);
    expect(r.stdout.length).toBe(0);
    expect(r.lines).toHaveLength(1);
    expect(r.lines[0]).toMatch(message);
  });

  it('keeps each diagnostic on one line whatever the file name holds, and quotes it in fixes', () => {
    const file = join(work, "odd\tname\nit's.env");
    writeFileSync(file, 'A=1\n', { mode: 0o644 });
    chmodSync(file, 0o644);
    const r = helper(['env-check', file, '', 'B']);
    expect(r.status).toBe(1);
    expectProtocol(r.lines);
    expect(r.lines).toEqual([
      `error\t${JSON.stringify(file)}: B is not set`,
      `fix\tset B=<the real value> in $'${work}/odd\\x09name\\x0ait\\'s.env'`,
      `warning\t${JSON.stringify(file)} is readable by group or others (mode 0644)`,
      `fix\tchmod 600 $'${work}/odd\\x09name\\x0ait\\'s.env'`,
    ]);
    const spaced = join(work, "my env's file");
    writeFileSync(spaced, 'A=1\n');
    chmodSync(spaced, 0o640);
    expect(helper(['env-check', spaced, '']).lines[1]).toBe(`fix\tchmod 600 '${work}/my env'\\''s file'`);
  });

  it('names the file in the fix that rewrites line endings', () => {
    const file = writeEnv('A=x\rB=y\n');
    expect(helper(['env-values', file]).lines[1]).toBe(`fix\tuse LF line endings (for example: dos2unix ${file})`);
  });
});

describe('the helper file', () => {
  it('requires only Node built-ins and has no Handlebars expressions', () => {
    const text = readFileSync(HELPER, 'utf8');
    const required = [...text.matchAll(/require\(\s*(['"`])([^'"`]+)\1\s*\)/g)].map((m) => m[2]);
    expect(required.length).toBeGreaterThan(0);
    for (const name of required) expect(name).toMatch(/^node:/);
    expect(text).not.toContain('{{');
  });
});

// ---- property: files written the way a careful user writes them read back as written ------

/** Characters that stress the reader, mixed with arbitrary code points. */
const SPECIAL = [
  ' ', '  ', '\t', '\n', '#', ' #', '=', '"', "'", '`', '\\', '\\n', '\\r', '\\t', 'n', 'r', '$', '$(touch CANARY)',
  '`touch CANARY`', '%s', '{{', '}}', ';', '|', '&', '*', '!', '~', 'é', '😀', '\u00a0', '\u2028', '\u2029', '\u3000',
  '\ufeff', '\v', '\f', 'export ', 'A=1', 'x',
];
const valueArb = fc
  .array(
    fc.oneof(
      { arbitrary: fc.constantFrom(...SPECIAL), weight: 3 },
      { arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 3 }), weight: 2 },
    ),
    { maxLength: 8 },
  )
  .map((parts) => parts.join(''))
  // no NUL or CR (no env file carries them) and valid UTF-16 only
  .filter((v) => !/[\0\r]/.test(v) && Buffer.from(v, 'utf8').toString('utf8') === v);
const keyArb = fc
  .oneof(fc.constantFrom('A', 'B', 'API_KEY', '_x', 'export'), fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,10}$/))
  .filter((k) => k !== '__proto__');

type Quote = 'none' | "'" | '"' | '`';
/**
 * How a careful user writes a value: bare when util.parseEnv keeps it whole (no #, newline, leading
 * quote, or spaces at its ends), else in a quote it does not contain. In double quotes a newline
 * may be written as \n, so a value holding a literal \n cannot go there.
 */
function writeValue(v: string, prefer: Quote | 'auto', newlineEscape: boolean): { text: string; quoted: boolean } | null {
  const bare = !/[#\n]/.test(v) && !/^['"`]/.test(v) && !v.startsWith(' ') && !v.endsWith(' ');
  const fits: Record<Quote, boolean> = { none: bare, "'": !v.includes("'"), '"': !v.includes('"') && !v.includes('\\n'), '`': !v.includes('`') };
  const order: Quote[] = prefer === 'auto' ? ['none', "'", '"', '`'] : [prefer, 'none', "'", '"', '`'];
  const q = order.find((o) => fits[o]);
  if (q === undefined) return null;
  if (q === 'none') return { text: v, quoted: false };
  return { text: `${q}${q === '"' && newlineEscape ? v.replace(/\n/g, '\\n') : v}${q}`, quoted: true };
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
  trailingQuoted: fc.constantFrom('', '\t', '\t# tab comment', ' #c', '#'),
});
const lineArb = fc.oneof(
  { arbitrary: entryArb.map((e) => ({ kind: 'entry' as const, ...e })), weight: 6 },
  { arbitrary: fc.constantFrom('', '# comment', '#K=v', '# x = "y', '#').map((text) => ({ kind: 'raw' as const, text })), weight: 1 },
);
/** A file and the values its author meant (later duplicates win). */
const fileArb = fc
  .record({ lines: fc.array(lineArb, { maxLength: 8 }), crlf: fc.boolean(), finalNewline: fc.boolean() })
  .map(({ lines, crlf, finalNewline }) => {
    const out: string[] = [];
    const meant: Env = {};
    for (const l of lines) {
      if (l.kind === 'raw') {
        out.push(l.text);
        continue;
      }
      const written = writeValue(l.value, l.prefer, l.newlineEscape);
      if (written === null) continue;
      out.push(`${l.indent}${l.exported ? 'export ' : ''}${l.key}${l.beforeEq}=${l.afterEq}${written.text}${written.quoted ? l.trailingQuoted : l.trailing}`);
      meant[l.key] = l.value;
    }
    // A careful author ends a file whose last line is a comment with a newline.
    const lastIsComment = out.length > 0 && out[out.length - 1]!.startsWith('#');
    let text = out.join('\n') + (finalNewline || lastIsComment ? '\n' : '');
    if (crlf) text = text.replace(/\n/g, '\r\n');
    return { text, meant: sortEnv(meant) };
  });

const RUNS = Number(process.env.ENV_PARSER_PROPERTY_RUNS ?? 40);

describe('property: careful env files', () => {
  it(`${RUNS} generated files: accepted, and env-values prints what the author meant, which is what util.parseEnv reads`, () => {
    fc.assert(
      fc.property(fileArb, ({ text, meant }) => {
        const r = helper(['env-values', writeEnv(text)]);
        expect(r.stderr, JSON.stringify(text)).toBe('');
        expect(r.status).toBe(0);
        expect(valuesOf(r.stdout), JSON.stringify(text)).toEqual(meant);
        expect(nodeParse(text), JSON.stringify(text)).toEqual(meant);
        expect(existsSync(join(work, 'CANARY'))).toBe(false);
      }),
      { numRuns: RUNS },
    );
  }, 30_000 + RUNS * 1_000); // one Node start per file; the margin covers shrinking a failure
});

// ---- property: arbitrary text is either refused at a line, or read exactly as util.parseEnv reads it --

const NOISE = [
  'A', 'B', 'export', ' ', '  ', '\t', '\n', '\n', '\r\n', '\r', '=', '=', '#', ' #', '"', "'", '`', '\\', '\\n',
  '$(touch CANARY)', 'x', 'é', '\u00a0', '\u2028', '\ufeff', '.', '-', ':', '1', '_', '__proto__',
];
const noiseArb = fc
  .array(fc.oneof({ arbitrary: fc.constantFrom(...NOISE), weight: 5 }, { arbitrary: fc.string({ unit: 'binary', maxLength: 2 }), weight: 1 }), {
    maxLength: 6,
  })
  .map((parts) => parts.join(''));
/** Lines that mostly look like KEY=value (so that a fair share is accepted) around noise. */
const noiseLineArb = fc.oneof(
  { arbitrary: fc.tuple(fc.constantFrom('A', 'B', 'export A', '  B', '_x'), noiseArb).map(([key, value]) => `${key}=${value}`), weight: 3 },
  { arbitrary: noiseArb, weight: 1 },
);
const noiseFileArb = fc
  .record({ lines: fc.array(noiseLineArb, { maxLength: 6 }), eol: fc.constantFrom('\n', '\n', '\r\n'), end: fc.constantFrom('', '\n') })
  .map(({ lines, eol, end }) => lines.join(eol) + end)
  .filter((t) => !t.includes('\0') && Buffer.from(t, 'utf8').toString('utf8') === t);

describe('property: noisy env files', () => {
  it(`${RUNS * 2} noisy files: refused at a named line, or env-values equals util.parseEnv with only valid keys`, () => {
    let accepted = 0;
    fc.assert(
      fc.property(noiseFileArb, (text) => {
        const file = writeEnv(text);
        const r = helper(['env-values', file]);
        expectProtocol(r.lines);
        if (r.status === 0) {
          accepted += 1;
          expect(r.stderr).toBe('');
          const got = valuesOf(r.stdout);
          expect(got, JSON.stringify(text)).toEqual(nodeParse(text));
          for (const key of Object.keys(got)) expect(key).toMatch(/^[A-Za-z_][A-Za-z0-9_]*$/);
        } else {
          expect(r.status, JSON.stringify(text)).toBe(1);
          expect(r.stdout.length).toBe(0);
          // A refusal always names its line: the reader foresaw what util.parseEnv does with the text.
          expect(r.lines[0], JSON.stringify(text)).toMatch(new RegExp(`^error\\t${escapeRe(file)}:[1-9][0-9]*: `));
        }
        expect(existsSync(join(work, 'CANARY'))).toBe(false);
      }),
      { numRuns: RUNS * 2 },
    );
    // The generator must reach the accepting side too, not only refusals.
    expect(accepted).toBeGreaterThan(RUNS * 2 * 0.1);
  }, 30_000 + RUNS * 2_000);
});
