// The Node helper's `serve` mode: one process answers the bash library's requests (`N\0CWD\0ARG1\0...ARGN\0` on stdin)
// as the command line would, each request's stdout in OUT_FILE and diagnostics in ERR_FILE, then `STATUS\n` on stdout.
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseEnv } from "node:util";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HelperServer, helperCli, request } from "./helpers/helper-serve.js";
import { scratchDir } from "./helpers/scratch.js";

const text = (b: Buffer): string => b.toString("utf8");

describe("serve: one helper process for many requests", () => {
  it("answers each request byte for byte as its own file pair and status line, then exits 0 at EOF", async () => {
    const dir = await scratchDir("dg-serve-");
    const app = path.join(dir, "app");
    mkdirSync(path.join(app, "src", "lib"), { recursive: true });
    writeFileSync(path.join(app, "package.json"), "{}\n");
    writeFileSync(path.join(app, "src", "lib", "a.js"), "");
    mkdirSync(path.join(app, "node_modules", "x"), { recursive: true });
    writeFileSync(path.join(app, "node_modules", "x", "index.js"), "");

    // Values with newlines, quotes of every kind, #, =, spaces, non-ASCII: what env-values must pass through.
    const hostile = path.join(dir, "hostile.env");
    const hostileText =
      'A="line 1\\nline 2"\nB=\'say "hi" # not a comment\'\nC=`it\'s $HOME`\nD=  spaced value  \nE=k=v=w\nF="multi\nline"\nG=é😀\n';
    writeFileSync(hostile, hostileText, { mode: 0o600 });
    const failing = path.join(dir, "failing.env");
    writeFileSync(failing, "A=\n", { mode: 0o644 });
    chmodSync(failing, 0o644);
    const list = path.join(dir, "list");
    writeFileSync(path.join(app, "secret.env"), "S=1\n");

    const server = new HelperServer(path.join(dir, "out"), path.join(dir, "err"));

    const values = await server.ask(dir, ["env-values", hostile]);
    expect(values.status).toBe(0);
    expect(text(values.err)).toBe("");
    expect(text(values.out)).toBe('A=line 1\nline 2\0B=say "hi" # not a comment\0C=it\'s $HOME\0D=spaced value\0E=k=v=w\0F=multi\nline\0G=é😀\0');
    const oracle = parseEnv(hostileText);
    expect(text(values.out)).toBe(Object.entries(oracle).map(([k, v]) => `${k}=${v}\0`).join(""));

    const check = await server.ask(dir, ["env-check", failing, "", "A", "B"]);
    expect(check.status).toBe(1);
    expect(text(check.out)).toBe("");
    expect(text(check.err)).toBe(
      [
        `error\t${failing}: A is empty`,
        `fix\tset A=<the real value> in ${failing}`,
        `error\t${failing}: B is not set`,
        `fix\tset B=<the real value> in ${failing}`,
        `warning\t${failing} is readable by group or others (mode 0644)`,
        `fix\tchmod 600 ${failing}`,
        "",
      ].join("\n"),
    );

    const version = await server.ask(dir, ["node-version"]);
    expect(version).toEqual({ status: 0, out: Buffer.from(`${process.version}\n`), err: Buffer.alloc(0) });

    // Relative paths are the request's CWD's, not the server's.
    const inputs = await server.ask(app, ["input-hash", "build", "", "", "salt"]);
    expect(inputs.status).toBe(0);
    expect(text(inputs.out)).toMatch(/^[0-9a-f]{64}\n$/);
    expect(inputs.out).toEqual(helperCli(app, ["input-hash", "build", "", "", "salt"]).out);
    expect(text((await server.ask(app, ["relative", ".", dir])).out)).toBe("..\n");

    const release = await server.ask(dir, ["source-hash", "app", list, "secret.env"]);
    expect([release.status, text(release.out), text(release.err)]).toEqual([0, expect.stringMatching(/^[0-9a-f]{64}\n$/), ""]);
    expect(readFileSync(list, "utf8")).toBe("package.json\0src/lib/a.js\0");

    const unknown = await server.ask(dir, ["no-such-command", "x"]);
    expect(unknown.status).toBe(2);
    expect(text(unknown.out)).toBe("");
    expect(text(unknown.err)).toMatch(/^error\tusage: node deploygen-helper\.cjs \(env-check FILE EXAMPLE \[KEY\.\.\.\] \| .*\)\n$/);

    // A request whose N is not a number is that one field; the next request is answered as usual.
    server.send(Buffer.from("x\0"));
    expect(await server.answer()).toEqual({ status: 2, out: Buffer.alloc(0), err: Buffer.from('error\tserve: "x" is not a number\n') });
    expect((await server.ask(path.join(dir, "missing"), ["node-version"])).err.toString()).toBe(`error\tserve: cannot enter ${dir}/missing\n`);
    expect((await server.ask(dir, ["pm2-exceptions", "pm2", "ns", dir])).status).toBe(2);
    expect((await server.ask(dir, [])).status).toBe(2);
    expect((await server.ask(dir, ["node-version"])).status).toBe(0);

    const end = await server.close();
    expect(end.code).toBe(0);
    expect(end.ms).toBeLessThan(2000);
    expect(end.stdout).toBe("0\n1\n0\n0\n0\n0\n2\n2\n2\n2\n2\n0\n");
    expect(end.stderr).toBe("");
  });

  it("answers requests written all at once, in order, and a KEY check refusal like the command line", async () => {
    const dir = await scratchDir("dg-serve-");
    const env = path.join(dir, ".env");
    writeFileSync(env, "A=1\nB=2\n", { mode: 0o600 });
    const server = new HelperServer(path.join(dir, "out"), path.join(dir, "err"));
    server.send(Buffer.concat([request(dir, ["env-values", env, "B"]), request(dir, ["env-values", env, "BAD-KEY"]), request(dir, ["node-version"])]));
    const statuses = [await server.nextLine(), await server.nextLine(), await server.nextLine()];
    expect(statuses).toEqual(["0", "2", "0"]);
    const end = await server.close();
    expect(end.code).toBe(0);
  });

  it("writes OUT_FILE and ERR_FILE where they were named when it started, whatever the request's CWD", async () => {
    const dir = await scratchDir("dg-serve-");
    mkdirSync(path.join(dir, "elsewhere"));
    const server = new HelperServer("out", "err", { cwd: dir });
    server.send(request(path.join(dir, "elsewhere"), ["relative", ".", dir]));
    const answer = await server.answer();
    expect(answer).toEqual({ status: 0, out: Buffer.from("..\n"), err: Buffer.alloc(0) });
    expect((await server.close()).code).toBe(0);
  });

  it("exits 0 at once when stdin ends before any request", async () => {
    const dir = await scratchDir("dg-serve-");
    const end = await new HelperServer(path.join(dir, "out"), path.join(dir, "err")).close();
    expect(end).toMatchObject({ code: 0, stdout: "", stderr: "" });
  });
});

describe("serve answers as the command line does (property)", () => {
  let dir: string;
  let server: HelperServer;
  beforeAll(async () => {
    const { mkdtemp } = await import("node:fs/promises");
    const { tmpdir } = await import("node:os");
    dir = await mkdtemp(path.join(tmpdir(), "dg-serve-prop-"));
    server = new HelperServer(path.join(dir, "out"), path.join(dir, "err"));
  });
  afterAll(async () => {
    await server.close();
    const { rm } = await import("node:fs/promises");
    await rm(dir, { recursive: true, force: true });
  });

  const line = fc.oneof(
    fc.constantFrom("A=1", "B=two words", "C='x # y'", 'D="a\\nb"', "  E = v ", "#c", "", "export F=1", "G=`q`", "BAD LINE", "H=\"open", "1X=2"),
    fc.string({ unit: "grapheme", maxLength: 12 }),
  );
  const envText = fc.tuple(fc.array(line, { maxLength: 6 }), fc.boolean()).map(([lines, end]) => lines.join("\n") + (end ? "\n" : ""));
  const key = fc.constantFrom("A", "B", "D", "F", "Z", "bad-key");
  const requestArb = fc.oneof(
    envText.chain((t) => fc.tuple(fc.constant(t), fc.array(key, { maxLength: 3 })).map(([body, keys]) => ({ kind: "env-values" as const, body, keys }))),
    envText.chain((t) => fc.tuple(fc.constant(t), fc.array(key, { maxLength: 3 })).map(([body, keys]) => ({ kind: "env-check" as const, body, keys }))),
    fc.constantFrom("install", "build").map((kind) => ({ kind: "input-hash" as const, body: kind, keys: [] as string[] })),
    fc.constantFrom(".", "..", "/", "sub/x").map((to) => ({ kind: "relative" as const, body: to, keys: [] as string[] })),
    fc.constantFrom("node-version", "nope", "").map((kind) => ({ kind: "other" as const, body: kind, keys: [] as string[] })),
  );

  it("gives the same status, stdout and stderr bytes for the same request", async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(requestArb, { minLength: 1, maxLength: 4 }), async (requests) => {
        for (const r of requests) {
          const cwd = path.join(dir, `case-${n++}`);
          mkdirSync(path.join(cwd, "sub"), { recursive: true });
          writeFileSync(path.join(cwd, "package.json"), "{}");
          writeFileSync(path.join(cwd, "sub", "a.txt"), "");
          writeFileSync(path.join(cwd, ".env"), r.body, { mode: 0o640 });
          const args =
            r.kind === "env-values" ? ["env-values", ".env", ...r.keys]
            : r.kind === "env-check" ? ["env-check", ".env", "", ...r.keys]
            : r.kind === "input-hash" ? ["input-hash", r.body, "", "", ".env"]
            : r.kind === "relative" ? ["relative", ".", r.body]
            : r.body === "" ? []
            : [r.body];
          const served = await server.ask(cwd, args);
          const cli = helperCli(cwd, args);
          expect({ ...served, out: text(served.out), err: text(served.err) }, JSON.stringify(args)).toEqual({
            status: cli.status,
            out: text(cli.out),
            err: text(cli.err),
          });
          expect(served.out.equals(cli.out)).toBe(true);
        }
      }),
      { numRuns: 25 },
    );
  });
});

describe("node-version on the command line", () => {
  it("node-version prints the version of the Node that runs it", () => {
    expect(text(helperCli(process.cwd(), ["node-version"]).out)).toBe(`${process.version}\n`);
  });
});
