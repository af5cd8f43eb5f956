// The Handlebars environment: strict (a missing field fails generation instead of rendering
// empty), only known helpers, no HTML escaping, no prototype access. Proved with a throwaway
// templates folder given to createRenderer, then pinned on the real templates.
import { afterAll, describe, expect, it } from "vitest";
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { createRenderer, TEMPLATES_DIR, type TemplateName } from "../../src/render.js";
import { tempDir } from "./support.js";

const dir = tempDir("dg-safety-hbs-");
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;

/** Renders `source` as a template of its own (a fresh file and renderer each time). */
function render(source: string, view: object, partials: Record<string, string> = {}): string {
  const folder = path.join(dir, `t${counter++}`);
  mkdirSync(path.join(folder, "scripts"), { recursive: true });
  mkdirSync(path.join(folder, "partials"), { recursive: true });
  for (const [name, text] of Object.entries(partials)) writeFileSync(path.join(folder, "partials", `${name}.hbs`), text);
  writeFileSync(path.join(folder, "scripts", "start.sh.hbs"), source);
  return createRenderer(folder).render("scripts/start.sh" as TemplateName, view);
}

describe("a missing field fails generation instead of rendering empty", () => {
  it.each([
    ["{{missing}}", /"missing" not defined/],
    ["{{app.missing}}", /"missing" not defined/],
    ["{{sh missing}}", /not defined|missing field/],
    ["{{systemd missing}}", /not defined|missing field/],
    ["{{js missing}}", /not defined|missing field/],
    ["{{json missing}}", /not defined|missing field/],
    ["{{#if missing}}x{{/if}}", /\{\{#if\}\} got a missing field/],
    ["{{#unless missing}}x{{/unless}}", /\{\{#unless\}\} got a missing field/],
    ["{{#each missing}}x{{/each}}", /\{\{#each\}\} got a missing field/],
    ["{{#with missing}}x{{/with}}", /\{\{#with\}\} got a missing field/],
    ["{{#each apps}}{{nmae}}{{/each}}", /"nmae" not defined/],
    ["{{#if app.nmae}}x{{/if}}", /missing field/],
  ])("%s throws", (source, message) => {
    expect(() => render(source, { app: { name: "web" }, apps: [{ name: "web" }] })).toThrow(message);
  });

  it("null is how a view says 'absent': {{#if}} takes its else branch, no error", () => {
    expect(render("{{#if group}}Group={{group}}{{else}}none{{/if}}", { group: null })).toBe("none");
    expect(render("{{#each list}}{{this}},{{/each}}", { list: [] })).toBe("");
  });

  it("a helper given an object or a missing value instead of a string throws", () => {
    expect(() => render("{{sh value}}", { value: { a: 1 } })).toThrow(/expected a string/);
    expect(() => render("{{systemdWord \"%f/\" value}}", { value: ["x"] })).toThrow(/expected a string/);
  });

  it("a missing partial throws", () => {
    expect(() => render("{{> nope}}", {})).toThrow(/partial nope could not be found/);
  });
});

describe("only known helpers", () => {
  it("an unknown helper fails when the template is compiled, before any view is seen", () => {
    expect(() => render("{{shellescape value}}", { value: "x" })).toThrow(/knownHelpersOnly.*unknown helper shellescape/);
    // Even in a branch that never renders: the compiler refuses it, not the view.
    expect(() => render("{{#if never}}{{shellescape value}}{{/if}}", { never: null, value: "x" })).toThrow(/knownHelpersOnly.*unknown helper shellescape/);
    // A bare {{#name}} block is a field lookup for Handlebars, which strict mode refuses.
    expect(() => render("{{#myBlock}}x{{/myBlock}}", {})).toThrow(/"myBlock" not defined/);
  });
});

describe("no HTML escaping", () => {
  it("{{x}} (no triple stash) passes <&>\"'`= through unchanged, in templates and partials", () => {
    const value = `<&>"'\`= &amp; &#x27;`;
    expect(render("{{x}}", { x: value })).toBe(value);
    expect(render("[{{> part}}]", { x: value }, { part: "{{x}}" })).toBe(`[${value}]`);
    // The quoting helpers' output is not escaped either.
    expect(render("{{sh x}} {{js x}}", { x: "<a href='b'>" })).toBe(`'<a href='\\''b'\\''>' "<a href='b'>"`);
  });
});

describe("no prototype access", () => {
  it.each([
    ["{{constructor}}"],
    ["{{constructor.name}}"],
    ["{{__proto__}}"],
    ["{{app.constructor.name}}"],
    ["{{app.toString}}"],
    ["{{list.constructor}}"],
    ["{{app.__defineGetter__}}"],
    ['{{lookup this "constructor"}}'],
    ['{{lookup app "hasOwnProperty"}}'],
    ["{{#with constructor}}{{name}}{{/with}}"],
    ["{{#with app.constructor}}{{name}}{{/with}}"],
    ["{{sh app.constructor.name}}"],
  ])("%s throws instead of reaching Object.prototype", (source) => {
    expect(() => render(source, { app: { name: "web" }, list: ["a"] })).toThrow();
  });

  it("own fields still render, arrays included", () => {
    expect(render("{{app.name}} {{list.length}} {{#each list}}{{this}}{{/each}} {{lookup app \"name\"}}", { app: { name: "web" }, list: ["a", "b"] })).toBe("web 2 ab web");
  });
});

describe("the real templates", () => {
  const templateFiles = (folder: string): string[] =>
    readdirSync(folder, { withFileTypes: true }).flatMap((entry) =>
      entry.isDirectory() ? templateFiles(path.join(folder, entry.name)) : /\.(hbs|sh)$/.test(entry.name) ? [path.join(folder, entry.name)] : [],
    );
  const files = templateFiles(TEMPLATES_DIR);

  it("use a triple stash only for commands, which are shell code by design", () => {
    for (const file of files) {
      for (const match of readFileSync(file, "utf8").matchAll(/\{\{\{([^}]*)\}\}\}/g)) {
        expect(path.relative(TEMPLATES_DIR, file)).toBe("scripts/config.sh.hbs");
        expect(match[1]).toBe("this");
      }
    }
  });

  it("write a field without a quoting helper only when it is a validated name, a number or generated text", () => {
    // Each of these is constrained before it reaches a template: names match [a-z][a-z0-9-]*
    // (user and group [a-z_][a-z0-9_-]*), env keys [A-Za-z_][A-Za-z0-9_]*, numbers are numbers,
    // the header is deploygen's own text. installScript (a path) appears only in a comment, and a
    // path cannot hold a line break. In the scripts: @key is a command name of deploygen's own
    // (deploy, install-systemd...), name an array element of the library's (DG_OUTPUTS_OF[app.build]:
    // its own prefix and a validated app name), functionName one of the library's dg_* functions. In the logrotate file:
    // logDir is the logs folder deploygen names, rootPlaceholder its own marker, installedName
    // derived from the project and environment names, maxSize matches LOG_SIZE_PATTERN, and
    // pm2LogUnderRoot/pm2LogAbsolute are set only for a path LOGROTATE_UNSAFE_PATH accepts (no
    // quote, backslash, glob character or line break). Anything else must go through sh,
    // systemd*, js or json.
    const allowed = new Set([
      "header", "project", "environment", "namespace", "rootEnvVar", "~rootEnvVar", "unitPrefix", "unitTemplate", "healthUnitPrefix", "healthUnit",
      "timerName", "user", "group", "key", "shellName", "alertWebhookEnv", "deployScriptName", "startScriptName", "stopScriptName", "healthCheckScriptName",
      "installSystemdScriptName", "portText", "health.timeoutSeconds", "intervalSeconds", "startTimeoutSeconds", "stopTimeoutSeconds", "installScript",
      "port", "maxHealthTimeout", "minFreeDiskMB", "releasesKeep", "@key", "name", "functionName",
      "logDir", "rootPlaceholder", "installedName", "maxSize", "keep", "pm2LogUnderRoot", "pm2LogAbsolute",
    ]);
    const bare: string[] = [];
    for (const file of files) {
      const text = readFileSync(file, "utf8").replace(/\{\{\{this\}\}\}/g, "");
      for (const match of text.matchAll(/\{\{([^#/>!{}][^}]*)\}\}/g)) {
        const words = match[1]!.trim().split(/\s+/);
        if (words.length === 1 && words[0] !== "else" && !allowed.has(words[0]!)) bare.push(`${path.relative(TEMPLATES_DIR, file)}: {{${match[1]}}}`);
      }
    }
    expect(bare).toEqual([]);
  });

  it("the library and the Node helper are copied verbatim behind the header, never rendered", async () => {
    const { planFixture } = await import("../helpers/generate.js");
    const generated = await planFixture("codeframe");
    for (const name of ["deploygen-lib.sh", "deploygen-helper.cjs"]) {
      const source = readFileSync(path.join(TEMPLATES_DIR, "scripts", name), "utf8");
      const output = generated.files.find((file) => file.path === `scripts/${name}`)?.content;
      expect(output, name).toBeDefined();
      expect(output!.endsWith(source), name).toBe(true);
      // What comes before the template's bytes: a shebang or shellcheck directive, and comments.
      const prefix = output!.slice(0, output!.length - source.length).split("\n").filter(Boolean);
      expect(prefix.length).toBeGreaterThan(1);
      for (const line of prefix) expect(line, name).toMatch(name.endsWith(".sh") ? /^#/ : /^(#!|\/\/)/);
    }
  });
});
