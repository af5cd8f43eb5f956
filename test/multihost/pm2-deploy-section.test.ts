// The generated `deploy.<env>` section read back by pm2-deploy's own code: PM2's own loader
// (Common.parseConfig) loads the generated ecosystem file, pm2-deploy's real deploy.js builds each
// host's settings and pipes them through `sh -c "echo '<JSON>' | deploy"`, and in place of the
// `deploy` shell script a probe runs `read conf` and the `config_get` function extracted from the
// installed script's text at test time (not a copy), then prints what each key reads back as.
// Every field must come back exactly, for any value validation lets through.
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { validateManifest } from "../../src/manifest/validate.js";
import { ManifestError } from "../../src/errors.js";
import { resolveProject } from "../../src/model.js";
import { ecosystemOutputs } from "../../src/outputs/ecosystem.js";
import { createRenderer } from "../../src/render.js";
import { PM2_DEPLOY_KEYS } from "../../src/outputs/pm2-deploy.js";
import { REMOTE_PATH_CHARS, REMOTE_REPO_CHARS, SSH_OPTION_VALUE_CHARS } from "../../src/manifest/remote-rules.js";

const REPO_ROOT = path.resolve(import.meta.dirname, "..", "..");
const require = createRequire(import.meta.url);
const PM2_DEPLOY_JS = require.resolve("pm2-deploy/deploy.js", { paths: [path.join(REPO_ROOT, "node_modules", "pm2")] });
const PM2_COMMON = path.join(REPO_ROOT, "node_modules", "pm2", "lib", "Common.js");
const NODE_PATH = [path.join(REPO_ROOT, "node_modules", "pm2", "node_modules"), path.join(REPO_ROOT, "node_modules")].join(":");

/** The installed `deploy` script's `config_get` function, as text. */
function extractConfigGet(): string {
  const script = readFileSync(path.join(path.dirname(PM2_DEPLOY_JS), "deploy"), "utf8");
  const found = /^config_get\(\) \{\n[\s\S]*?^\}\n/m.exec(script);
  if (!found) throw new Error("pm2-deploy's deploy script has no config_get() function any more: re-read how it parses its settings");
  expect(script).toMatch(/^read conf$/m);
  return found[0];
}

const work = mkdtempSync(path.join(os.tmpdir(), "dg-pm2-deploy-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A copy of pm2-deploy whose deploy.js is the real one and whose `deploy` prints what config_get reads. */
const probeDir = path.join(work, "pm2-deploy-probe");
mkdirSync(probeDir);
copyFileSync(PM2_DEPLOY_JS, path.join(probeDir, "deploy.js"));
writeFileSync(
  path.join(probeDir, "deploy"),
  `#!/usr/bin/env bash\nread conf\n${extractConfigGet()}\necho "--host"\nfor key in "$@"; do printf '%s=%s\\n' "$key" "$(config_get "$key")"; done\n`,
  { mode: 0o755 },
);
const runner = path.join(work, "read-back.cjs");
writeFileSync(
  runner,
  `const fs = require('fs');
const [file, env, ...keys] = process.argv.slice(2);
const conf = require(${JSON.stringify(PM2_COMMON)}).parseConfig(fs.readFileSync(file), file);
require(${JSON.stringify(path.join(probeDir, "deploy.js"))}).deployForEnv(conf.deploy, env, keys, (error) => process.exit(error ? 1 : 0));
`,
);

const READ_KEYS = [...PM2_DEPLOY_KEYS, "port"];

/** What pm2-deploy's deploy script reads for each key, per host, in the order it visits them. */
function readBack(ecosystemFile: string, env: string): Record<string, string>[] {
  const out = execFileSync(process.execPath, [runner, ecosystemFile, env, ...READ_KEYS], { env: { ...process.env, NODE_PATH, NODE_ENV: "test" }, encoding: "utf8" });
  return out
    .split("--host\n")
    .slice(1)
    .map((block) => Object.fromEntries(block.split("\n").filter(Boolean).map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)])));
}

const chars = (classBody: string): string[] => {
  const all: string[] = [];
  for (let code = 0x20; code < 0x7f; code++) if (new RegExp(`^[${classBody}]$`).test(String.fromCharCode(code))) all.push(String.fromCharCode(code));
  return all;
};
const word = (alphabet: string[], min = 1, max = 12) => fc.string({ unit: fc.constantFrom(...alphabet), minLength: min, maxLength: max });
const alnum = chars("A-Za-z0-9");
const lower = chars("a-z0-9");
const label = fc.tuple(fc.constantFrom(...alnum), word([...alnum, "-"], 0, 8), fc.constantFrom(...alnum)).map(([a, b, c]) => a + b + c);
const host = fc.oneof(
  fc.array(label, { minLength: 1, maxLength: 3 }).map((labels) => labels.join(".")),
  fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((parts) => parts.join(".")),
).filter((name) => name !== "localhost");
const hostEntry = fc.oneof(host, fc.record({ host, port: fc.integer({ min: 1, max: 65535 }) }));
/** A path segment over the alphabet that is not "." or ".." and does not start with "-". */
const segment = fc.tuple(fc.constantFrom(...chars(REMOTE_PATH_CHARS).filter((c) => c !== "/" && c !== "-" && c !== ".")), word(chars(REMOTE_PATH_CHARS).filter((c) => c !== "/"), 0, 8)).map(([a, b]) => a + b);
const relative = fc.array(segment, { minLength: 1, maxLength: 3 }).map((parts) => parts.join("/"));
const branchPart = fc.tuple(fc.constantFrom(...alnum, "_"), word(chars("A-Za-z0-9._-"), 0, 6), fc.constantFrom(...alnum, "_")).map(([a, b, c]) => a + b + c).filter((part) => !part.includes("..") && !part.endsWith(".lock"));

const remoteManifest = fc.record({
  hosts: fc.uniqueArray(hostEntry, { minLength: 1, maxLength: 3, selector: (entry) => (typeof entry === "string" ? entry : entry.host) }),
  user: fc.tuple(fc.constantFrom(..."abcdefghijklmnopqrstuvwxyz_"), word([...lower, "_", "-"], 0, 10)).map(([a, b]) => a + b),
  repo: fc.tuple(fc.constantFrom(...chars(REMOTE_REPO_CHARS).filter((c) => c !== "-" && c !== "~")), word(chars(REMOTE_REPO_CHARS), 0, 30)).map(([a, b]) => a + b),
  ref: fc.array(branchPart, { minLength: 1, maxLength: 3 }).map((parts) => `origin/${parts.join("/")}`),
  path: relative.map((rest) => `/${rest}`),
  sshOptions: fc.array(fc.tuple(fc.constantFrom(...chars("A-Za-z")), word(alnum, 0, 10), word(chars(SSH_OPTION_VALUE_CHARS), 1, 16)).map(([a, b, value]) => `${a}${b}=${value}`), { maxLength: 3 }),
  envFile: fc.option(relative, { nil: undefined }),
  output: fc.oneof(fc.constant("deploy"), relative),
});

function manifestOf(sample: Record<string, unknown>) {
  const s = sample as { hosts: unknown[]; user: string; repo: string; ref: string; path: string; sshOptions: string[]; envFile?: string; output: string };
  return {
    version: 1,
    project: "shop",
    output: s.output,
    apps: { api: { runtime: "node", script: "dist/server.js", port: 3000 } },
    environments: {
      production: {
        ...(s.envFile !== undefined ? { envFile: s.envFile } : {}),
        hosts: s.hosts,
        remote: { user: s.user, repo: s.repo, ref: s.ref, path: s.path, sshOptions: s.sshOptions },
      },
    },
  };
}

const validate = (data: unknown) => validateManifest({ data, displayName: "deploygen.yaml", locate: () => undefined });
const renderer = createRenderer();

describe("the deploy section as pm2-deploy reads it", () => {
  it("gives back every field exactly, for any value the manifest's validation accepts", () => {
    let run = 0;
    fc.assert(
      fc.property(remoteManifest, (sample) => {
        const manifest = validate(manifestOf(sample));
        const project = resolveProject(manifest, "deploygen.yaml");
        const environment = project.environments[0]!;
        const file = path.join(work, `run-${run++}`, "ecosystem.production.config.js");
        mkdirSync(path.dirname(file));
        writeFileSync(file, ecosystemOutputs(project, environment, renderer)[0]!.content);
        const section = (require(file) as { deploy: { production: Record<string, unknown> } }).deploy.production;
        const hosts = readBack(file, "production");
        expect(hosts).toHaveLength(sample.hosts.length);
        hosts.forEach((read, index) => {
          const entry = sample.hosts[index]!;
          expect(read).toEqual({
            user: sample.user,
            host: typeof entry === "string" ? entry : entry.host,
            port: typeof entry === "string" ? "" : String(entry.port),
            ref: sample.ref,
            repo: sample.repo,
            path: sample.path,
            ssh_options: sample.sshOptions.map((option) => `-o ${option}`).join(" "),
            "pre-setup": section["pre-setup"],
            "post-setup": section["post-setup"] ?? "",
            "post-deploy": section["post-deploy"],
          });
        });
        expect(section["post-deploy"]).toMatch(new RegExp(`bash ${project.output.replace(/[.+]/g, "\\$&")}/scripts/deploy-production\\.sh$`));
      }),
      { numRuns: 12 },
    );
  });

  it("is refused by validation when any field holds a character pm2-deploy cannot carry", () => {
    const unsafe = fc.constantFrom("'", '"', " ", "\t", "$", "`", ";", "&", "|", "*", "?", "[", "\\", "(", ")", "{", "}", "<", ">", "#", "!", "\n");
    const fields = fc.constantFrom("user", "repo", "ref", "path", "sshOption", "host", "envFile");
    fc.assert(
      fc.property(remoteManifest, fields, unsafe, fc.nat(), (sample, field, char, at) => {
        const insert = (value: string) => {
          const index = 1 + (at % value.length);
          return value.slice(0, index) + char + value.slice(index);
        };
        const broken = { ...sample, hosts: [...sample.hosts], sshOptions: [...sample.sshOptions] } as typeof sample;
        if (field === "sshOption") broken.sshOptions = [insert("ConnectTimeout=5")];
        else if (field === "host") broken.hosts[0] = insert(typeof sample.hosts[0] === "string" ? sample.hosts[0] : sample.hosts[0]!.host);
        else if (field === "envFile") broken.envFile = insert(sample.envFile ?? ".env.production");
        else broken[field] = insert(sample[field]);
        expect(() => validate(manifestOf(broken))).toThrow(ManifestError);
      }),
      { numRuns: 200 },
    );
  });
});
