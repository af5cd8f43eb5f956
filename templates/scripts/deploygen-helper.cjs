'use strict';
// deploygen-helper.cjs: what the generated bash scripts cannot do safely themselves (Node built-ins only, Node 20.12+):
// `node deploygen-helper.cjs SUBCOMMAND ARG...` (COMMANDS at the end), or many requests in one process (serve). stdout
// carries only records; each diagnostic is one stderr line, `error<TAB>MESSAGE`, `warning<TAB>MESSAGE`, or `fix<TAB>ACTION`
// (what fixes the line before it). Exit status: 0 done (warnings allowed), 1 refused or failed, 2 usage error. Env files
// are read by util.parseEnv, as the generated ecosystem file reads them, so the scripts and PM2 see the same values; a file
// util.parseEnv would misread, or with a value that could not reach a process, is refused with its line and a fix (refusal).
const [fs, os, path, { createHash }] = [require('node:fs'), require('node:os'), require('node:path'), require('node:crypto')];
const { parseEnv } = require('node:util');

const [KEY, CONTROL] = [/^[A-Za-z_][A-Za-z0-9_]*$/, /[\x00-\x1f\x7f]/];
const attempt = (f, fallback) => { try { return f(); } catch (e) { return fallback instanceof Function ? fallback(e) : fallback; } };
const raise = (error) => { throw error; };
const failure = (message, fix, more) => Object.assign(new Error(message), { fix, ...more }); // reported as is, with its fix
const show = (s) => (CONTROL.test(s) ? JSON.stringify(s) : s); // a file name or key as one printable line
const shellWord = (s) => (/^[A-Za-z0-9_.,:/@%+=-]+$/.test(s) ? s : !CONTROL.test(s) ? `'${s.replace(/'/g, `'\\''`)}'`
  : `$'${s.replace(/[\\'\x00-\x1f\x7f]/g, (c) => (/[\\']/.test(c) ? `\\${c}` : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`))}'`);
const mode4 = (mode) => mode.toString(8).padStart(4, '0');
let sink = { out: (data) => process.stdout.write(data), err: (text) => process.stderr.write(text) }; // serve swaps in buffers
const diagnose = (kind, message, fix) => sink.err(`${kind}\t${message.trim().replace(/\s*\n\s*/g, '; ')}\n` + (fix ? `fix\t${fix}\n` : ''));
const print = (records, end = '\n') => (sink.out(records.map((record) => `${record}${end}`).join('')), 0);
// PROGRAM ARGS's stdout (a Buffer), run without a shell; its stderr is in the error when it fails.
const execute = (program, args) => require('node:child_process').execFileSync(program, args, { timeout: 60000, stdio: 'pipe', maxBuffer: 2 ** 30 });

/** The first line util.parseEnv would misread, as { line, message, fix }; null when the text is accepted. */
function refusal(text, bytes) {
  const at = (index, message, fix) => ({ line: text.slice(0, index).split('\n').length, message, fix });
  // A NUL byte ends every record and environment string: the value could not reach a process whole.
  if (text.includes('\0')) return at(text.indexOf('\0'), 'contains a NUL byte', 'an env file is text: remove the NUL byte');
  const [utf8, toUTF8] = [Buffer.from(text), 'save the file as UTF-8 (for example: iconv -f latin1 -t utf-8)'];
  const bad = utf8.findIndex((byte, i) => byte !== bytes[i]);
  if (bad >= 0) return at(utf8.subarray(0, bad).toString().length, 'is not UTF-8 text (util.parseEnv reads U+FFFD instead)', toUTF8);
  const bom = 'starts with a UTF-8 byte order mark, which util.parseEnv makes part of the first key';
  if (text.startsWith('\ufeff')) return at(0, bom, 'save the file as UTF-8 without BOM');
  const [loneCR, toLF] = [text.search(/\r(?!\n)/), 'use LF line endings (for example: dos2unix FILE)']; // `A=x<CR>B=y` reads A=xB=y
  if (loneCR >= 0) return at(loneCR, 'carriage return (CR) that does not end a line; util.parseEnv deletes it', toLF);
  const bareLF = text.includes('\r\n') ? text.search(/(?<!\r)\n/) : -1; // a file is CRLF or LF: a mix is a damaged copy
  if (bareLF >= 0) return at(bareLF, 'mixes CRLF and LF line endings', 'use LF line endings throughout (for example: dos2unix FILE)');
  const [lines, keys, glued] = [text.split('\n').map((l) => l.replace(/\r$/, '')), [], 'which util.parseEnv reads as part of the next key'];
  for (let i = 0; i < lines.length; i++) {
    const [line, err] = [lines[i], (message, fix, n = i) => ({ line: n + 1, message, fix })];
    if (line === '' || (line.startsWith('#') && (i < lines.length - 1 || !line.includes('=')))) continue;
    const comment = 'comment with "=" on the last line without a final newline, which util.parseEnv reads as KEY=value';
    if (line.startsWith('#')) return err(comment, 'end the file with a newline');
    if (/^[ \t]*$/.test(line)) return err(`line of only spaces or tabs, ${glued}`, 'delete the spaces or tabs so that the line is empty');
    if (/^[ \t]+#/.test(line)) return err(`indented comment, ${glued}`, "remove the spaces or tabs before '#'");
    const [eq, commentIt] = [line.indexOf('='), "start the line with '#' to make it a comment"];
    if (eq < 0) return err(`no '=' on the line, ${glued}`, `write KEY=value (KEY= for an empty value), or ${commentIt}`);
    const key = line.slice(0, eq).replace(/^ +| +$/g, '').replace(/^export /, '');
    if (key === '') return err("no key before '=' (util.parseEnv stops reading the file here)", 'write KEY=value');
    const rename = 'a key is ASCII letters, digits and _, not starting with a digit, after an optional "export " (one space); rename it';
    if (!KEY.test(key)) return err(`invalid key ${JSON.stringify(key)}: a shell or PM2 cannot carry it`, `${rename}, or remove the tabs around it`);
    if (key === '__proto__') return err('the key __proto__, which util.parseEnv drops', 'rename it');
    keys.push(key);
    // Node keeps a quote that never closes in the value (or drops the key at the end), and ignores text after a closing one.
    const [quote, start] = [line.slice(eq + 1).replace(/^ +/, '')[0], i];
    if (!['"', "'", '`'].includes(quote)) continue;
    let rest = line.slice(line.indexOf(quote, eq) + 1);
    while (!rest.includes(quote) && i + 1 < lines.length) rest = lines[++i];
    const closeIt = `add the closing ${quote} (a multi-line value ends with the quote it starts with)`;
    if (!rest.includes(quote)) return err(`the value of ${key} opens with ${quote} but never closes`, closeIt, start);
    const after = rest.slice(rest.indexOf(quote) + 1).replace(/^[ \t]+/, '');
    const opened = i === start ? '' : ` (the value of ${key} opened with ${quote} on line ${start + 1}: is a closing quote missing?)`;
    const ignored = `text after the closing ${quote}${opened}, which util.parseEnv ignores`;
    if (after !== '' && !after.startsWith('#')) return err(ignored, `remove the text, or start it with '#' to make it a comment`);
  }
  // The lines above are what util.parseEnv reads; a key it finds beyond them means they missed a case.
  const unexpected = Object.keys(parseEnv(text)).find((k) => !keys.includes(k));
  const message = `util.parseEnv reads a key ${JSON.stringify(unexpected)} that no line sets visibly`;
  return unexpected === undefined ? null : { line: 0, message, fix: 'write one KEY=value per line' };
}
const userName = (uid) => attempt(() => fs.readFileSync('/etc/passwd', 'utf8'), '').split('\n').map((l) => l.split(':'))
  .find((f) => f[2] === String(uid))?.[0] ?? `uid ${uid}`;
/** FILE's variables; a failure (error and fix) when it is missing, unreadable or refused. */
function readEnvFile(file, example = '') {
  const [name, word, bytes] = [show(file), shellWord(file), attempt(() => fs.readFileSync(file), (error) => error)];
  if (!Buffer.isBuffer(bytes)) {
    const from = example ? ` from its example (cp ${shellWord(example)} ${word})` : '';
    if (bytes.code === 'ENOENT') throw failure(`${name} is missing`, `create it${from}, set its values, then chmod 600 ${word}`, { missing: true });
    const why = bytes.code === 'EISDIR' ? 'it is a folder' : bytes.message;
    if (bytes.code !== 'EACCES') throw failure(`${name} cannot be read: ${why}`, 'point the manifest at an env file');
    const [st, me] = [attempt(() => fs.statSync(file)), userName(process.getuid())];
    const details = st ? `mode ${mode4(st.mode & 0o7777)}, owner ${userName(st.uid)}` : 'a folder on its path cannot be entered';
    const fix = `let ${me} read it (for example: chown ${me} ${word}), or run as its owner`;
    throw failure(`${name} cannot be read by user ${me}: permission denied (${details})`, fix);
  }
  const [text, refused] = [bytes.toString('utf8'), refusal(bytes.toString('utf8'), bytes)];
  if (refused) throw failure(`${name}${refused.line ? `:${refused.line}` : ''}: ${refused.message}`, refused.fix.replace('FILE', word));
  return parseEnv(text);
}
// FILE is usable: readable, accepted, each KEY set, not empty, and not EXAMPLE's placeholder (EXAMPLE '' or missing: none).
function envCheck(file, example, ...keys) {
  const env = readEnvFile(file, example);
  const unusable = (e) => (e.missing || diagnose('warning', `${e.message}; example values are not compared`), {});
  const ex = example === '' ? {} : attempt(() => readEnvFile(example), unusable);
  const problem = (key, value = env[key]) => (value === undefined ? 'is not set' : value === '' ? 'is empty'
    : Object.hasOwn(ex, key) && ex[key] === value ? `still has the example's placeholder value from ${show(example)}` : '');
  const unset = keys.filter((key) => problem(key));
  unset.forEach((key) => diagnose('error', `${show(file)}: ${key} ${problem(key)}`, `set ${key}=<the real value> in ${shellWord(file)}`));
  const mode = fs.statSync(file).mode & 0o777;
  if (mode & 0o044) diagnose('warning', `${show(file)} is readable by group or others (mode ${mode4(mode)})`, `chmod 600 ${shellWord(file)}`);
  return unset.length > 0 ? 1 : 0;
}
// `KEY=VALUE` records ended by NUL (bash: `read -r -d ''`) for every key, or the KEYs named (an unset one prints nothing).
function envValues(file, ...keys) {
  const env = readEnvFile(file);
  return print((keys.length > 0 ? keys.filter((k) => Object.hasOwn(env, k)) : Object.keys(env)).map((k) => `${k}=${env[k]}`), '\0');
}
/** `pm2 jlist`'s process list; PM2 may print lines such as "[PM2] Spawning PM2 daemon" before it. */
function readProcessList(text) {
  const lines = text.split('\n');
  return lines.map((l, i) => l.startsWith('[') && attempt(() => JSON.parse(lines.slice(i).join('\n')))).find(Array.isArray)
    ?? raise(new Error(`pm2 jlist printed no process list: ${JSON.stringify(lines[0].slice(0, 120))}`));
}
// name, namespace, status, pid, exec_mode, cwd per process, from JLIST_FILE, or with PM2_BIN from the daemon, asked the
// way `pm2 jlist` asks (pm2's lib/Client.js, lib/API.js) but without loading PM2 (~30 ms instead of ~300): JLIST_FILE gets its list.
async function pm2List(file, pm2Bin) {
  const list = pm2Bin ? await daemonList(pm2Bin) : readProcessList(fs.readFileSync(file, 'utf8'));
  if (pm2Bin) fs.writeFileSync(file, JSON.stringify(list));
  return print(list.map(({ name, pid, pm2_env: env }) => [name, env?.namespace, env?.status, pid, env?.exec_mode, env?.pm_cwd].join('\t')));
}
function daemonList(pm2Bin) {
  const [pkg, home] = [path.resolve(fs.realpathSync(pm2Bin), '../..'), process.env.PM2_HOME || path.join(os.homedir(), '.pm2')];
  const fix = 'run pm2 jlist to see why (pm2 kill restarts a stuck daemon)';
  const unanswered = (why) => failure(`PM2's daemon (PM2_HOME=${show(home)}) does not answer ${why}`, fix);
  // PM2 7 ships its RPC client in modules/, PM2 5 as npm packages; in another layout, `pm2 jlist` is run.
  const load = (name) => attempt(() => require(path.join(pkg, 'modules', name))) || require(require.resolve(name, { paths: [pkg] }));
  const [axon, rpc] = attempt(() => [load('pm2-axon'), load('pm2-axon-rpc')], []);
  const jlist = () => execute(pm2Bin, ['jlist']).toString();
  if (!rpc) return readProcessList(attempt(jlist, (e) => raise(unanswered(`to ${show(pm2Bin)} jlist (${e.message.trim().split('\n').pop()})`))));
  return new Promise((resolve, reject) => {
    const sock = axon.socket('req');
    const done = (error, list) => (clearTimeout(timer), sock.close(), error ? reject(error) : resolve(list));
    const timer = setTimeout(() => done(unanswered('within 20 s')), 20000);
    sock.on('socket error', (e) => done(unanswered(`(${e.message})`))).on('error', () => {}); // axon would retry a refusal forever
    new rpc.Client(sock).call('getMonitorData', {}, (error, list) => done(error && unanswered(`(${error.message})`), list));
    sock.connect(path.join(home, 'rpc.sock'));
  });
}
/** The worker count PM2 records for `instances`: 0 is one per CPU, -N one per CPU but N (at least one). */
const pm2InstanceCount = (n) => (Number(n) > 0 ? Number(n) : Math.max(1, os.cpus().length + Number(n)));
// Apps to start afresh: `pm2 reload` keeps the settings of a first start and never removes a variable.
function pm2Changed(file, ecosystem, namespace) {
  const ecosystemFile = require.resolve(path.resolve(ecosystem));
  delete require.cache[ecosystemFile]; // a served request reads it as it is now, as a new process would
  const wanted = new Map(require(ecosystemFile).apps.map((app) => [app.name, app]));
  const names = (list) => (typeof list === 'string' && list !== '' ? list.split(',') : []);
  const changed = readProcessList(fs.readFileSync(file, 'utf8')).filter(({ name, pm2_env: env }) => {
    const app = wanted.get(name);
    if (env?.namespace !== namespace || !app) return false;
    const cwd = path.resolve(app.cwd);
    const same = env.pm_cwd === cwd && (!app.script.includes('/') || env.pm_exec_path === path.resolve(cwd, app.script))
      && env.exec_interpreter === app.interpreter && env.exec_mode === `${app.exec_mode}_mode` && env.pm_out_log_path === app.out_file
      && Number(env.instances) === pm2InstanceCount(app.instances) && env.pm_err_log_path === app.error_file;
    return !same || names((env.env || {}).DEPLOYGEN_ENV_KEYS).some((key) => !names(app.env.DEPLOYGEN_ENV_KEYS).includes(key));
  });
  return print([...new Set(changed.map((p) => p.name))]);
}
const parentOf = (pid) => Number((fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1] || '').split(' ')[1]) || 0;
// "PID<TAB>command line" per listener on TCP PORT that is not OURS (or a descendant); "?" for one this user cannot see.
function portOwners(port, ...ours) {
  const hex = `:${Number(port).toString(16).toUpperCase().padStart(4, '0')}`;
  const rows = ['/proc/net/tcp', '/proc/net/tcp6'].flatMap((t) => attempt(() => fs.readFileSync(t, 'utf8'), '').split('\n').slice(1));
  const inodes = new Set(rows.map((r) => r.trim().split(/\s+/)).filter((f) => f[3] === '0A' && f[1]?.endsWith(hex)).map((f) => `socket:[${f[9]}]`));
  if (inodes.size === 0) return 0;
  const fds = (pid) => attempt(() => fs.readdirSync(`/proc/${pid}/fd`), []).map((fd) => attempt(() => fs.readlinkSync(`/proc/${pid}/fd/${fd}`)));
  // Our processes and their descendants first: when they hold every listener, no other process needs reading.
  const kids = (pid) => attempt(() => fs.readdirSync(`/proc/${pid}/task`), []).flatMap((t) => attempt(() => fs.readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8'), '').split(' ').filter(Boolean));
  const tree = (pids) => pids.flatMap((pid) => [pid, ...tree(kids(pid))]);
  const held = new Set(tree(ours.filter((pid) => Number(pid) > 0)).flatMap(fds));
  if ([...inodes].every((inode) => held.has(inode))) return 0;
  const found = fs.readdirSync('/proc').filter((pid) => /^\d+$/.test(pid) && fds(pid).some((fd) => inodes.has(fd)));
  const mine = new Set(ours.map(Number).filter(Boolean));
  const isOurs = (pid) => { for (let p = pid; p > 1; p = attempt(() => parentOf(p), 0)) if (mine.has(p)) return true; return false; };
  const command = (pid) => attempt(() => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim().slice(0, 80), '');
  if (found.length === 0) return print(['?\tan unidentified process']);
  return print(found.filter((pid) => !isOurs(Number(pid))).map((pid) => `${pid}\t${command(pid)}`));
}
const lines = (list) => list.split('\n').filter(Boolean);
const within = (file, dirs) => dirs.some((dir) => file === dir || file.startsWith(`${dir}/`));
/** find -path style pattern ("*" also matches "/") as a regular expression. */
const patternRegex = (pattern) => new RegExp(`^${pattern.replace(/[.+^${}()|\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}(/.*)?$`);
// File names are byte strings (latin1: a char per byte, sorted bytewise) that reach fs and tar intact; walk: files and symlinks.
const [latin, pathOf] = [(s) => Buffer.from(s).toString('latin1'), (name, root) => Buffer.from(`${latin(root)}/${name}`, 'latin1')];
const walk = (root, prune, dir = '') => fs.readdirSync(pathOf(dir || '.', root), { withFileTypes: true, encoding: 'latin1' }) // DIR: '' or 'a/b/'
  .flatMap((e) => (e.isDirectory() ? (prune(dir + e.name, e.name) ? [] : walk(root, prune, `${dir}${e.name}/`))
    : e.isFile() || e.isSymbolicLink() ? [dir + e.name] : []));
// Feeds HASH each part as LENGTH:BYTES, so that different lists of parts never feed it the same bytes; returns HASH.
const frame = (hash, ...parts) => parts.reduce((h, part) => h.update(`${Buffer.byteLength(part, 'latin1')}:`).update(part, 'latin1'), hash);
// Feeds HASH ROOT/FILE's name and content (a symlink's text, unless FOLLOW finds a file); false if gone or, unless FOLLOW, dangling.
function feed(hash, file, root, follow) {
  const name = pathOf(file, root), st = attempt(() => fs.lstatSync(name)), link = st?.isSymbolicLink();
  const target = link ? attempt(() => fs.statSync(name)) : st;
  if (target?.isFile() && (follow || !link)) return frame(hash, 'file', file, fs.readFileSync(name));
  return (target || (link && follow)) && frame(hash, link ? 'link' : 'folder', file, link ? fs.readlinkSync(name, { encoding: 'buffer' }) : '');
}
// What redoes an install: dependency manifests and lock files; a build: those and the app's files (or those matching PATTERNS).
const DEPENDENCY_FILES = new RegExp('^(package\\.json|package-lock\\.json|npm-shrinkwrap\\.json|yarn\\.lock|pnpm-lock\\.yaml|bun\\.lockb?|\\.npmrc'
  + '|\\.nvmrc|pyproject\\.toml|uv\\.lock|poetry\\.lock|Pipfile(\\.lock)?|requirements[^/]*\\.txt|\\.python-version)$');
// The hash of a step's inputs, in its app's folder: SALT, the input files' names and contents, and which OUTPUTs exist.
function inputHash(kind, excludes, patterns, salt, ...outputs) {
  const [skip, only, hash] = [lines(latin(excludes)), lines(latin(patterns)).map(patternRegex), frame(createHash('sha256'), 'salt', latin(salt))];
  // Never dependencies, dot-folders (.next, .git, .venv...), logs, caches, or the app's previous outputs.
  const prune = (rel, name) => within(rel, skip) || /^(\..+|node_modules|__pycache__|logs)$|\.deploygen-previous$/.test(name);
  const input = (rel) => !within(rel, skip) && (DEPENDENCY_FILES.test(rel) || (kind === 'build' && (!only.length || only.some((re) => re.test(rel)))));
  walk('.', prune).filter(input).sort().forEach((rel) => feed(hash, rel, '.', true));
  return print([outputs.filter((out) => attempt(() => fs.lstatSync(out))).reduce((h, out) => frame(h, 'output', latin(out)), hash).digest('hex')]);
}
const NEVER_RELEASED = /(^|\/)(\.git|\.deploygen|node_modules|\.venv|__pycache__)(\/|$)|^logs(\/|$)/; // state, dependencies, logs
// The files a release copies (git's, or all; never NEVER_RELEASED, EXCLUDES, gone) into LIST_FILE for tar; prints their hash.
function sourceHash(root, listFile, excludes = '') {
  const [skip, hash, git] = [lines(latin(excludes)), createHash('sha256'), (...args) => execute('git', ['-C', root, ...args]).toString('latin1')];
  const listed = attempt(() => git('rev-parse', '--is-inside-work-tree') === 'true\n', false)
    ? git('ls-files', '-z', '--cached', '--others', '--exclude-standard').split('\0') : walk(root, (rel) => NEVER_RELEASED.test(rel));
  const files = [...new Set(listed)].sort().filter((f) => f && !NEVER_RELEASED.test(f) && !within(f, skip) && feed(hash, f, root, false));
  fs.writeFileSync(listFile, Buffer.from(files.map((f) => `${f}\0`).join(''), 'latin1'));
  return print([hash.digest('hex')]);
}
// Exceptions PM2 reports only on its event bus (in cluster mode), appended to DIR/<app name> until this is killed.
function pm2Exceptions(pm2Bin, namespace, dir) {
  const text = (data) => (typeof data === 'string' ? data : data?.stack || data?.message || JSON.stringify(data));
  const append = ({ process: app, data }) => app?.namespace === namespace && /^[\w.-]+$/.test(app.name)
    && fs.appendFileSync(path.join(dir, app.name), `${text(data)}\n`);
  const listen = (e, bus) => (e ? diagnose('warning', `cannot listen to PM2's events: ${e.message}`) : bus.on('process:exception', append));
  return new Promise(() => require(path.resolve(fs.realpathSync(pm2Bin), '../..')).launchBus(listen));
}
// POSTs one alert as JSON; a webhook that fails or hangs (5 s) is reported, never waited for longer.
async function alert(url, project, environment, app, event, detail) {
  const body = JSON.stringify({ project, environment, app, event, detail, host: os.hostname(), time: new Date().toISOString() });
  const options = { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(5000) };
  const response = await fetch(url, options).catch((error) => error);
  return response.ok ? 0 : (diagnose('warning', `alert webhook failed: ${response.message ?? `HTTP ${response.status}`}`), 1);
}
// serve OUT_FILE ERR_FILE: runs requests `N\0CWD\0ARG1\0...ARGN\0` from stdin as the command line would, one at a time.
async function serve(outFile, errFile) {
  let [fields, files, pending] = [[], [path.resolve(outFile), path.resolve(errFile)], Buffer.alloc(0)];
  for await (const chunk of process.stdin) {
    pending = Buffer.concat([pending, chunk]);
    for (let end; (end = pending.indexOf(0)) >= 0; pending = pending.subarray(end + 1)) fields.push(pending.toString('utf8', 0, end));
    // A request whose N is not a number is that one field: status 2, and the next field starts a request.
    for (let n; fields.length > 0 && (n = /^\d+$/.test(fields[0]) ? Number(fields[0]) + 2 : 1) <= fields.length;) {
      const [[count, cwd, ...args], buffers, own] = [fields.splice(0, n), [[], []], sink];
      sink = { out: (data) => buffers[0].push(Buffer.from(data)), err: (text) => buffers[1].push(Buffer.from(text)) };
      const entered = cwd !== undefined && attempt(() => (process.chdir(cwd), true), false);
      if (!entered) diagnose('error', `serve: ${cwd === undefined ? `${JSON.stringify(count)} is not a number` : `cannot enter ${show(cwd)}`}`);
      const status = entered ? await main(args, true) : 2;
      sink = own;
      files.forEach((file, i) => fs.writeFileSync(file, Buffer.concat(buffers[i])));
      process.stdout.write(`${status}\n`);
    }
  }
  process.exit(0);
}
const COMMANDS = { // [ARG] is optional, [KEY...] are KEY names; 'alone': runs until killed or EOF, never served
  'env-check': ['FILE EXAMPLE [KEY...]', envCheck], 'env-values': ['FILE [KEY...]', envValues],
  'pm2-list': ['JLIST_FILE [PM2_BIN]', pm2List], 'pm2-changed': ['JLIST_FILE ECOSYSTEM NAMESPACE', pm2Changed],
  'port-owners': ['PORT [OUR_PID...]', portOwners], 'input-hash': ['install|build EXCLUDES PATTERNS SALT [OUTPUT...]', inputHash],
  'source-hash': ['ROOT LIST_FILE [EXCLUDES]', sourceHash], relative: ['FROM TO', (from, to) => print([path.relative(from, to)])],
  'node-version': ['', () => print([process.version])], alert: ['URL PROJECT ENVIRONMENT APP EVENT DETAIL', alert],
  'pm2-exceptions': ['PM2_BIN NAMESPACE DIR', pm2Exceptions, 'alone'], serve: ['OUT_FILE ERR_FILE', serve, 'alone'],
};
async function main([name, ...args], served = false) {
  const [usage, run, alone] = Object.hasOwn(COMMANDS, name ?? '') ? COMMANDS[name] : [];
  const [words, fail] = [(usage ?? '').split(' ').filter(Boolean), (status, message, fix) => (diagnose('error', message, fix), status)];
  const all = () => Object.entries(COMMANDS).map(([n, [u]]) => `${n} ${u}`.trim()).join(' | ');
  const missing = !run || args.length < words.filter((w) => !w.startsWith('[')).length || args[0] === '';
  if (missing) return fail(2, `usage: node deploygen-helper.cjs ${run ? `${name} ${usage}`.trim() : `(${all()})`}`);
  const badKey = words.includes('[KEY...]') ? args.slice(words.indexOf('[KEY...]')).find((k) => !KEY.test(k)) : undefined;
  if (badKey !== undefined) return fail(2, `${name}: ${JSON.stringify(badKey)} is not a KEY name ([A-Za-z_][A-Za-z0-9_]*)`);
  if (served && alone) return fail(2, `${name} is not served: run it as node deploygen-helper.cjs ${name} ${usage}`);
  return Promise.resolve().then(() => run(...args)).catch((e) => fail(1, e.fix ? e.message : `${name}: ${e.message}`, e.fix));
}
main(process.argv.slice(2)).then((code) => (process.exitCode = code));
