'use strict';
// deploygen-helper.cjs: the generated bash scripts ask Node what they cannot do safely
// themselves. Run as `node deploygen-helper.cjs SUBCOMMAND ARG...`; Node built-ins only, Node 20.12+.
//
//   env-check FILE EXAMPLE [KEY...]  FILE is usable: it exists, can be read, is accepted (below),
//                                    and sets every KEY to a non-empty value that differs from the
//                                    value EXAMPLE gives it (EXAMPLE may be '' for none; a missing
//                                    EXAMPLE is skipped). Warns when group or others can read FILE.
//   env-values FILE [KEY...]         prints `KEY=VALUE` records, each ended by a NUL byte, for every
//                                    key in FILE or only the KEYs named (in that order; an unset KEY
//                                    prints nothing). Bash reads them with `read -r -d ''`.
//
// stdout carries only records. Every diagnostic is one line on stderr: `error<TAB>MESSAGE`,
// `warning<TAB>MESSAGE`, or `fix<TAB>ACTION` (what fixes the error or warning just before it).
// Exit status: 0 usable (warnings allowed), 1 refused or unusable file, 2 usage error.
//
// Env files are read by Node's util.parseEnv, the same function the generated ecosystem file
// uses, so the scripts and PM2 see the same values. Before that, a file is refused (with its line
// and the fix) where util.parseEnv would read it silently, or differently from what its author
// meant, or where a value could not reach a process:
//   - a line that is not empty, a comment, or KEY=value: a line without `=`, a line of only
//     spaces or tabs, an indented `# comment` (Node glues each onto the next key, which is lost);
//   - a key that is empty (Node stops reading the file there), that is not [A-Za-z_][A-Za-z0-9_]*
//     (a shell or PM2 cannot carry it; this also catches tabs around the key and `export` not
//     followed by exactly one space), or `__proto__` (Node drops it);
//   - a quote that is never closed (Node keeps the quote in the value, or drops the key at the end
//     of the file), and text after a closing quote (Node ignores it: `A="x""y"` reads x);
//   - a comment with `=` on a last line that no newline ends (Node reads `#KEY=v` as key `#KEY`);
//   - a carriage return that does not end a line (Node deletes it: `A=x<CR>B=y` reads A=xB=y), and
//     a mix of CRLF and LF line endings (files are one or the other);
//   - a UTF-8 byte order mark (Node makes it part of the first key), bytes that are not UTF-8
//     (Node reads U+FFFD), and a NUL byte (the records above, and every environment, end there).
// Anything else is Node's reading: spaces around keys and values are trimmed, tabs are kept,
// `"..."` turns \n into a newline and nothing else, '...' and `...` are literal, and quoted values
// may span lines.
const fs = require('node:fs');
const os = require('node:os');
const { parseEnv } = require('node:util');

const KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
const QUOTES = `'"\``;

/** A file name or key as one printable line. */
const show = (s) => (/[\x00-\x1f\x7f]/.test(s) ? JSON.stringify(s) : s);
/** A file name as one shell word for a `fix` line; $'...' when it holds control characters. */
function shellWord(s) {
  if (/^[A-Za-z0-9_.,:/@%+=-]+$/.test(s)) return s;
  if (!/[\x00-\x1f\x7f]/.test(s)) return `'${s.replace(/'/g, `'\\''`)}'`;
  const hex = (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
  return `$'${s.replace(/[\\'\x00-\x1f\x7f]/g, (c) => (c === '\\' || c === "'" ? `\\${c}` : hex(c)))}'`;
}

function diagnose(kind, message, fix) {
  process.stderr.write(`${kind}\t${message}\n` + (fix ? `fix\t${fix}\n` : ''));
}

/** The first line util.parseEnv would misread, as { line, message, fix }; null when the text is accepted. */
function refusal(text, bytes) {
  const lineOf = (index) => text.slice(0, index).split('\n').length;
  const at = (index, message, fix) => ({ line: lineOf(index), message, fix });
  if (text.includes('\0')) return at(text.indexOf('\0'), 'contains a NUL byte', 'an env file is text: remove the NUL byte');
  const utf8 = Buffer.from(text);
  if (!utf8.equals(bytes)) {
    let i = 0;
    while (utf8[i] === bytes[i]) i++;
    return { line: bytes.subarray(0, i).toString('latin1').split('\n').length, message: 'is not UTF-8 text (util.parseEnv reads U+FFFD instead)', fix: 'save the file as UTF-8 (for example: iconv -f latin1 -t utf-8)' };
  }
  if (text.startsWith('\ufeff')) return at(0, 'starts with a UTF-8 byte order mark, which util.parseEnv makes part of the first key', 'save the file as UTF-8 without BOM');
  const loneCR = text.search(/\r(?!\n)/);
  if (loneCR >= 0) return at(loneCR, 'carriage return (CR) that does not end a line; util.parseEnv deletes it', 'use LF line endings (for example: dos2unix FILE)');
  const bareLF = text.includes('\r\n') ? text.search(/(?<!\r)\n/) : -1;
  if (bareLF >= 0) return at(bareLF, 'mixes CRLF and LF line endings', 'use LF line endings throughout (for example: dos2unix FILE)');

  const lines = text.split('\n').map((l) => l.replace(/\r$/, ''));
  const keys = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const err = (message, fix, n = i) => ({ line: n + 1, message, fix });
    if (line === '') continue;
    if (line.startsWith('#')) {
      if (i === lines.length - 1 && line.includes('=')) return err('comment with "=" on the last line without a final newline, which util.parseEnv reads as KEY=value', 'end the file with a newline');
      continue;
    }
    if (/^[ \t]*$/.test(line)) return err('line of only spaces or tabs, which util.parseEnv reads as part of the next key', 'delete the spaces or tabs so that the line is empty');
    if (/^[ \t]+#/.test(line)) return err('indented comment, which util.parseEnv reads as part of the next key', "remove the spaces or tabs before '#'");
    const eq = line.indexOf('=');
    if (eq < 0) return err("no '=' on the line, which util.parseEnv reads as part of the next key", "write KEY=value (KEY= for an empty value), or start the line with '#' to make it a comment");
    let key = line.slice(0, eq).replace(/^ +| +$/g, '');
    if (key.startsWith('export ')) key = key.slice(7);
    if (key === '') return err("no key before '=' (util.parseEnv stops reading the file here)", 'write KEY=value');
    if (!KEY.test(key)) return err(`invalid key ${JSON.stringify(key)}: a shell or PM2 cannot carry it`, 'a key is ASCII letters, digits and _, not starting with a digit, after an optional "export " (one space); rename it, or remove the tabs around it');
    if (key === '__proto__') return err('the key __proto__, which util.parseEnv drops', 'rename it');
    keys.push(key);

    const value = line.slice(eq + 1).replace(/^ +/, '');
    if (!QUOTES.includes(value[0] || 'none')) continue;
    const quote = value[0];
    const start = i;
    let rest = value.slice(1);
    while (!rest.includes(quote) && i + 1 < lines.length) rest = lines[++i];
    if (!rest.includes(quote)) return err(`the value of ${key} opens with ${quote} but never closes`, `add the closing ${quote} (a multi-line value ends with the quote it starts with)`, start);
    const after = rest.slice(rest.indexOf(quote) + 1).replace(/^[ \t]+/, '');
    if (after !== '' && !after.startsWith('#')) {
      const opened = i === start ? '' : ` (the value of ${key} opened with ${quote} on line ${start + 1}: is a closing quote missing?)`;
      return err(`text after the closing ${quote}${opened}, which util.parseEnv ignores`, "remove the text, or start it with '#' to make it a comment");
    }
  }
  // The lines above are what util.parseEnv reads; a key it finds beyond them means they missed a case.
  const seen = new Set(keys);
  const unexpected = Object.keys(parseEnv(text)).find((k) => !seen.has(k));
  if (unexpected !== undefined) return { line: 0, message: `util.parseEnv reads a key ${JSON.stringify(unexpected)} that no line sets visibly`, fix: 'write one KEY=value per line' };
  return null;
}

function userName(uid) {
  let passwd = '';
  try {
    passwd = fs.readFileSync('/etc/passwd', 'utf8');
  } catch {}
  const entry = passwd.split('\n').find((l) => l.split(':')[2] === String(uid));
  return entry ? entry.split(':')[0] : `uid ${uid}`;
}

/** Reads and parses FILE: { env } or { errors: [[message, fix]...], missing }. */
function readEnvFile(file, example = '') {
  let bytes;
  try {
    bytes = fs.readFileSync(file);
  } catch (error) {
    const name = show(file);
    if (error.code === 'ENOENT') {
      const from = example ? ` from its example (cp ${shellWord(example)} ${shellWord(file)})` : '';
      return { missing: true, errors: [[`${name} is missing`, `create it${from}, set its values, then chmod 600 ${shellWord(file)}`]] };
    }
    if (error.code === 'EACCES') {
      let details = '';
      try {
        const st = fs.statSync(file);
        details = ` (mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')}, owner ${userName(st.uid)})`;
      } catch {
        details = ' (a folder on its path cannot be entered)';
      }
      const me = userName(process.getuid());
      return { errors: [[`${name} cannot be read by user ${me}: permission denied${details}`, `let ${me} read it (for example: chown ${me} ${shellWord(file)}), or run as its owner`]] };
    }
    return { errors: [[`${name} cannot be read: ${error.code === 'EISDIR' ? 'it is a folder' : error.message}`, 'point the manifest at an env file']] };
  }
  const text = bytes.toString('utf8');
  const refused = refusal(text, bytes);
  if (refused) return { errors: [[`${show(file)}${refused.line ? `:${refused.line}` : ''}: ${refused.message}`, refused.fix.replace('FILE', shellWord(file))]] };
  return { env: parseEnv(text) };
}

function envCheck(file, example, ...keys) {
  const read = readEnvFile(file, example);
  if (read.errors) return read.errors.forEach(([message, fix]) => diagnose('error', message, fix)), 1;
  let exampleEnv = {};
  if (example !== '') {
    const ex = readEnvFile(example);
    if (ex.env) exampleEnv = ex.env;
    else if (!ex.missing) ex.errors.forEach(([message]) => diagnose('warning', `${message}; example values are not compared`));
  }
  let status = 0;
  for (const key of keys) {
    const value = read.env[key];
    const problem = !value ? (value === undefined ? 'is not set' : 'is empty')
      : Object.hasOwn(exampleEnv, key) && exampleEnv[key] === value ? `still has the example's placeholder value from ${show(example)}` : '';
    if (problem) {
      diagnose('error', `${show(file)}: ${key} ${problem}`, `set ${key}=<the real value> in ${shellWord(file)}`);
      status = 1;
    }
  }
  const mode = fs.statSync(file).mode & 0o777;
  if (mode & 0o044) diagnose('warning', `${show(file)} is readable by group or others (mode ${mode.toString(8).padStart(4, '0')})`, `chmod 600 ${shellWord(file)}`);
  return status;
}

function envValues(file, ...keys) {
  const read = readEnvFile(file);
  if (read.errors) return read.errors.forEach(([message, fix]) => diagnose('error', message, fix)), 1;
  const names = keys.length > 0 ? keys.filter((k) => Object.hasOwn(read.env, k)) : Object.keys(read.env);
  process.stdout.write(names.map((k) => `${k}=${read.env[k]}\0`).join(''));
  return 0;
}

// ----- PM2, ports, files and alerts for the deploy ---------------------------------------------
const path = require('node:path');

/** `pm2 jlist`'s process list; PM2 may print lines such as "[PM2] Spawning PM2 daemon" before it. */
function readProcessList(file) {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (!lines[i].startsWith('[')) continue;
    try {
      const list = JSON.parse(lines.slice(i).join('\n'));
      if (Array.isArray(list)) return list;
    } catch {}
  }
  throw new Error(`pm2 jlist printed no process list: ${JSON.stringify(lines[0].slice(0, 120))}`);
}

function pm2List(file) {
  for (const p of readProcessList(file)) {
    const env = p.pm2_env || {};
    process.stdout.write([p.name, env.namespace, env.status, p.pid, env.exec_mode, env.pm_cwd].join('\t') + '\n');
  }
  return 0;
}

/** The worker count PM2 records for `instances`: 0 is one per CPU, -N one per CPU but N (at least one). */
const pm2InstanceCount = (n) => (Number(n) > 0 ? Number(n) : Math.max(1, os.cpus().length + Number(n)));

// `pm2 reload` keeps an app's folder, program, interpreter, mode, instances and log files of its
// first start, and adds or updates variables but never removes one: an app whose settings differ
// from the ecosystem file's, or that has a variable the file no longer sets, is started afresh.
function pm2Changed(file, ecosystem, namespace) {
  const wanted = new Map(require(path.resolve(ecosystem)).apps.map((app) => [app.name, app]));
  const names = (list) => (typeof list === 'string' && list !== '' ? list.split(',') : []);
  const changed = new Set();
  for (const p of readProcessList(file)) {
    const env = p.pm2_env || {};
    const app = wanted.get(p.name);
    if (env.namespace !== namespace || !app) continue;
    const cwd = path.resolve(app.cwd);
    const same =
      env.pm_cwd === cwd &&
      (!app.script.includes('/') || env.pm_exec_path === path.resolve(cwd, app.script)) &&
      env.exec_interpreter === app.interpreter &&
      env.exec_mode === `${app.exec_mode}_mode` &&
      Number(env.instances) === pm2InstanceCount(app.instances) &&
      env.pm_out_log_path === app.out_file &&
      env.pm_err_log_path === app.error_file;
    const kept = new Set(names(app.env.DEPLOYGEN_ENV_KEYS));
    if (!same || names((env.env || {}).DEPLOYGEN_ENV_KEYS).some((key) => !kept.has(key))) changed.add(p.name);
  }
  for (const name of changed) process.stdout.write(`${name}\n`);
  return 0;
}

/** The parent of a process, from /proc (0 when it is gone). */
const parentOf = (pid) => Number((fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1] || '').split(' ')[1]) || 0;

// Processes listening on TCP PORT that are not OURS (given PIDs or their descendants): one line
// each, "PID<TAB>command line", or "?" for a listener this user cannot see.
function portOwners(port, ...ours) {
  const hex = `:${Number(port).toString(16).toUpperCase().padStart(4, '0')}`;
  const inodes = new Set();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try { text = fs.readFileSync(table, 'utf8'); } catch {}
    for (const row of text.split('\n').slice(1)) {
      const f = row.trim().split(/\s+/);
      if (f[3] === '0A' && f[1]?.endsWith(hex)) inodes.add(`socket:[${f[9]}]`);
    }
  }
  if (inodes.size === 0) return 0;
  const found = new Set();
  for (const pid of fs.readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    let fds = [];
    try { fds = fs.readdirSync(`/proc/${pid}/fd`); } catch { continue; }
    for (const fd of fds) {
      try { if (inodes.has(fs.readlinkSync(`/proc/${pid}/fd/${fd}`))) found.add(Number(pid)); } catch {}
    }
  }
  const mine = new Set(ours.map(Number).filter(Boolean));
  const isOurs = (pid) => {
    for (let p = pid; p > 1; ) { if (mine.has(p)) return true; try { p = parentOf(p); } catch { return false; } }
    return false;
  };
  if (found.size === 0) process.stdout.write('?\tan unidentified process\n');
  for (const pid of found) {
    if (isOurs(pid)) continue;
    let command = '';
    try { command = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim().slice(0, 80); } catch {}
    process.stdout.write(`${pid}\t${command}\n`);
  }
  return 0;
}

const lines = (list) => list.split('\n').filter(Boolean);
const within = (file, dirs) => dirs.some((dir) => file === dir || file.startsWith(`${dir}/`));
/** find -path style pattern ("*" also matches "/") as a regular expression. */
const patternRegex = (pattern) => new RegExp(`^${pattern.replace(/[.+^${}()|\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}(/.*)?$`);

// What decides whether an install is redone: dependency manifests and lock files. A build: those,
// and every file of the app but dependencies, dot-folders (.next, .git, .venv...), logs, caches
// and its own outputs; or only the files matching PATTERNS (newline-separated) when given.
const DEPENDENCY_FILES = /^(package\.json|package-lock\.json|npm-shrinkwrap\.json|yarn\.lock|pnpm-lock\.yaml|bun\.lockb?|\.npmrc|\.nvmrc|pyproject\.toml|uv\.lock|poetry\.lock|Pipfile(\.lock)?|requirements.*\.txt|\.python-version)$/;
function inputFiles(kind, excludes = '', patterns = '') {
  const skip = lines(excludes);
  const wanted = lines(patterns).map(patternRegex);
  const out = [];
  const walk = (dir) => {
    for (const entry of fs.readdirSync(dir || '.', { withFileTypes: true })) {
      const rel = dir ? `${dir}/${entry.name}` : entry.name;
      if (within(rel, skip)) continue;
      if (entry.isDirectory()) {
        if (!/^(\..+|node_modules|__pycache__|logs)$/.test(entry.name) && !entry.name.endsWith('.deploygen-previous')) walk(rel);
      } else if (kind === 'build' && (wanted.length === 0 || wanted.some((re) => re.test(rel)))) out.push(rel);
      else if (!dir && DEPENDENCY_FILES.test(entry.name)) out.push(rel);
    }
  };
  walk('');
  process.stdout.write(out.map((file) => `${file}\0`).join(''));
  return 0;
}

// The files a release copies, from a NUL-separated list on stdin (git ls-files, or find): never
// .git, dependencies, caches, logs, the state folder, or the paths in EXCLUDES (newline-separated:
// env files, build outputs, shared folders); files deleted since git listed them are left out.
function releaseFiles(root, excludes = '') {
  const skip = lines(excludes);
  const never = /(^|\/)(\.git|\.deploygen|node_modules|\.venv|__pycache__)(\/|$)|^logs(\/|$)/;
  const files = fs.readFileSync(0, 'utf8').split('\0').filter((file) => file && !never.test(file) && !within(file, skip) && fs.existsSync(path.join(root, file)));
  process.stdout.write(files.map((file) => `${file}\0`).join(''));
  return 0;
}

function relative(from, to) {
  process.stdout.write(`${path.relative(from, to)}\n`);
  return 0;
}

// Exceptions PM2 catches in an app and reports only on its event bus (in cluster mode they never
// reach the app's error log): appended to DIR/<app name> as they come, until this is killed.
function pm2Exceptions(pm2Bin, namespace, dir) {
  const pm2 = require(path.resolve(path.dirname(fs.realpathSync(pm2Bin)), '..'));
  return new Promise(() =>
    pm2.launchBus((error, bus) => {
      if (error) return diagnose('warning', `cannot listen to PM2's events: ${error.message}`);
      bus.on('process:exception', ({ process: app, data }) => {
        if (app?.namespace !== namespace || !/^[\w.-]+$/.test(app.name)) return;
        const text = typeof data === 'string' ? data : data?.stack || data?.message || JSON.stringify(data);
        fs.appendFileSync(path.join(dir, app.name), `${text}\n`);
      });
    }),
  );
}

// POSTs one alert as JSON; a webhook that fails or hangs (5 s) is reported, never waited for longer.
async function alert(url, project, environment, app, event, detail) {
  const body = JSON.stringify({ project, environment, app, event, detail, host: os.hostname(), time: new Date().toISOString() });
  try {
    const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(5000) });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return 0;
  } catch (error) {
    diagnose('warning', `alert webhook failed: ${error.message}`);
    return 1;
  }
}

const COMMANDS = {
  'env-check': { args: 'FILE EXAMPLE [KEY...]', min: 2, keysFrom: 2, run: envCheck },
  'env-values': { args: 'FILE [KEY...]', min: 1, keysFrom: 1, run: envValues },
  'pm2-list': { args: 'JLIST_FILE', min: 1, run: pm2List },
  'pm2-changed': { args: 'JLIST_FILE ECOSYSTEM NAMESPACE', min: 3, run: pm2Changed },
  'port-owners': { args: 'PORT [OUR_PID...]', min: 1, run: portOwners },
  'input-files': { args: 'install|build [EXCLUDES] [PATTERNS]', min: 1, run: inputFiles },
  'release-files': { args: 'ROOT [EXCLUDES] < NUL-separated paths', min: 1, run: releaseFiles },
  relative: { args: 'FROM TO', min: 2, run: relative },
  'pm2-exceptions': { args: 'PM2_BIN NAMESPACE DIR', min: 3, run: pm2Exceptions },
  alert: { args: 'URL PROJECT ENVIRONMENT APP EVENT DETAIL', min: 6, run: alert },
};

function main([name, ...args]) {
  const command = Object.hasOwn(COMMANDS, name ?? '') ? COMMANDS[name] : undefined;
  const usage = Object.entries(COMMANDS).map(([n, c]) => `${n} ${c.args}`).join(' | ');
  if (!command || args.length < command.min || args[0] === '') {
    diagnose('error', `usage: node deploygen-helper.cjs ${command ? `${name} ${command.args}` : `(${usage})`}`);
    return 2;
  }
  const badKey = command.keysFrom === undefined ? undefined : args.slice(command.keysFrom).find((k) => !KEY.test(k));
  if (badKey !== undefined) {
    diagnose('error', `${name}: ${JSON.stringify(badKey)} is not a KEY name ([A-Za-z_][A-Za-z0-9_]*)`);
    return 2;
  }
  try {
    return command.run(...args);
  } catch (error) {
    diagnose('error', `${name}: ${error.message}`);
    return 1;
  }
}

Promise.resolve(main(process.argv.slice(2))).then((code) => (process.exitCode = code));
