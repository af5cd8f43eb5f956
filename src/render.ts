// The one Handlebars environment: compiled strictly, no HTML escaping, and only named
// per-target quoting helpers. Templates are compiled once per process.
//
// Templates are always read from templates/ at run time (they are the source of truth). Only
// the Handlebars *runtime* is loaded up front: a template's compiled form comes from the table
// the bundle embeds at build time (src/build/bundle.mjs precompiles every template with
// COMPILE_OPTIONS below) when its text is unchanged, and otherwise from the Handlebars compiler,
// which is then loaded on demand (under vitest, from src/, always).
import handlebarsRuntime from "handlebars/runtime.js";
import type HandlebarsFull from "handlebars";
import { readFileSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { shellQuote, systemdQuote, systemdWord, systemdEnvAssignment, escapeSystemdSpecifiers, jsString, jsValue } from "./quote.js";
import { PRECOMPILED_TEMPLATES, type TemplateSpec } from "./render-precompiled.js";

// handlebars/runtime.js is the same Handlebars without its compiler; its bundled typings declare nothing.
const HandlebarsRuntime = handlebarsRuntime as unknown as Pick<typeof HandlebarsFull, "create">;

export const TEMPLATES_DIR = fileURLToPath(new URL("../templates/", import.meta.url));

const HELPERS = {
  /** POSIX shell word. */
  sh: (value: unknown) => shellQuote(requireString(value, "sh")),
  /** Double-quoted systemd word. */
  systemd: (value: unknown) => systemdQuote(requireString(value, "systemd")),
  /** Unquoted systemd path value ("%" doubled). */
  systemdPath: (value: unknown) => escapeSystemdSpecifiers(requireString(value, "systemdPath")),
  /** Double-quoted systemd word: {{systemdWord "%f/" path}} (the prefix is template text: specifiers and "/"). */
  systemdWord: (prefix: unknown, value: unknown) => systemdWord(requireString(prefix, "systemdWord"), requireString(value, "systemdWord")),
  /** Quoted Environment= assignment: {{systemdEnv "PM2_HOME" "%f/" path}}. */
  systemdEnv: (name: unknown, prefix: unknown, value: unknown) =>
    systemdEnvAssignment(requireString(name, "systemdEnv"), requireString(prefix, "systemdEnv"), requireString(value, "systemdEnv")),
  /** JavaScript string literal. */
  js: (value: unknown) => jsString(requireString(value, "js")),
  /** JavaScript/JSON value. */
  json: (value: unknown) => {
    if (value === undefined) throw new Error("template helper json got a missing field");
    return jsValue(value);
  },
};

/**
 * Strict mode makes {{missing}} throw, but not {{#if missing}} or {{#each missing}}: these would
 * silently render their else branch. The block helpers are wrapped so that a missing field
 * (undefined; views use null for "absent") fails generation too.
 */
const STRICT_BLOCK_HELPERS = ["if", "unless", "each", "with"] as const;

type HelperFn = (this: unknown, ...args: unknown[]) => unknown;

function strictBlockHelper(name: string, original: HelperFn): HelperFn {
  return function (this: unknown, ...args: unknown[]) {
    const options = args[args.length - 1] as { loc?: { start?: { line?: number } } } | undefined;
    if (args.length < 2 || args[0] === undefined) {
      const line = options?.loc?.start?.line;
      throw new Error(`template: {{#${name}}} got a missing field${line === undefined ? "" : ` (line ${line})`}`);
    }
    return original.apply(this, args);
  };
}

/**
 * Views reach templates with nothing behind their own fields: with strict mode, {{constructor}} or
 * {{x.__proto__}} then throw "not defined" like any other missing field (Handlebars' own
 * prototype-access check would render them empty). Plain data (object literals and arrays: what
 * views are made of) is copied, for each render, onto a prototype without named properties, so
 * that `in` sees own fields only; anything else is wrapped in a proxy whose `in` sees own
 * properties only. Template code reads copies much faster than proxies. A copy still converts to
 * a string as its original does ("[object Object]", or an array's elements joined), which
 * Handlebars' "not defined in ..." messages rely on.
 */
const prototypeConvertingTo = (toPrimitive: (this: unknown) => string): object =>
  Object.freeze(Object.create(null, { [Symbol.toPrimitive]: { value: toPrimitive } }));
const COPY_PROTOTYPES = {
  object: prototypeConvertingTo(() => "[object Object]"),
  array: prototypeConvertingTo(function (this: unknown) {
    return Array.prototype.join.call(this);
  }),
  /** For a copy of an object that had no prototype: it converts to nothing, as its original. */
  none: Object.freeze(Object.create(null)),
};

export function ownPropertiesOnly<T>(value: T, seen = new Map<object, object>()): T {
  if (value === null || typeof value !== "object") return value;
  let view = seen.get(value);
  if (!view) {
    view = plainCopy(value, seen) ?? ownPropertiesProxy(value, seen);
    seen.set(value, view);
  }
  return view as T;
}

/**
 * `value` copied onto one of COPY_PROTOTYPES, or undefined when it is not plain data. The copy
 * holds the enumerable own fields (and an array's elements); a field a view hides from
 * Object.keys would be missing from it, so a template that used one would fail, loudly.
 */
function plainCopy(value: object, seen: Map<object, object>): object | undefined {
  const prototype: unknown = Object.getPrototypeOf(value);
  if (prototype === Array.prototype && Array.isArray(value)) {
    const copy = Object.setPrototypeOf(new Array(value.length), COPY_PROTOTYPES.array) as unknown[];
    seen.set(value, copy);
    for (let index = 0; index < value.length; index++) if (index in value) copy[index] = ownPropertiesOnly(value[index] as unknown, seen);
    return copy;
  }
  if (prototype !== Object.prototype && prototype !== null) return undefined;
  const copy = Object.create(prototype === null ? COPY_PROTOTYPES.none : COPY_PROTOTYPES.object) as Record<string, unknown>;
  seen.set(value, copy);
  for (const key of Object.keys(value)) copy[key] = ownPropertiesOnly((value as Record<string, unknown>)[key], seen);
  return copy;
}

function ownPropertiesProxy(value: object, seen: Map<object, object>): object {
  return new Proxy(value, {
    has: (target, key) => Object.prototype.hasOwnProperty.call(target, key),
    get: (target, key, receiver) => {
      const result = Reflect.get(target, key, receiver);
      return Object.prototype.hasOwnProperty.call(target, key) ? ownPropertiesOnly(result, seen) : result;
    },
  });
}

function requireString(value: unknown, helper: string): string {
  if (typeof value === "number") return String(value);
  if (typeof value !== "string") throw new Error(`template helper ${helper} got ${value === undefined ? "a missing field" : typeof value}, expected a string`);
  return value;
}

export const COMPILE_OPTIONS: CompileOptions = {
  strict: true,
  noEscape: true,
  knownHelpersOnly: true,
  knownHelpers: Object.fromEntries(Object.keys(HELPERS).map((name) => [name, true])),
  preventIndent: true,
};

type CompileOptions = NonNullable<Parameters<typeof HandlebarsFull.compile>[1]>;
type TemplateDelegate = ReturnType<typeof HandlebarsFull.template>;

/** The Handlebars compiler (the full package), loaded only when a template is not precompiled. */
let compiler: typeof HandlebarsFull | undefined;
const loadCompiler = () => (compiler ??= createRequire(import.meta.url)("handlebars") as typeof HandlebarsFull);

/** Compiled specs by template text: a template is compiled at most once per process, whichever renderer asks. */
const compiledSpecs = new Map<string, TemplateSpec>(PRECOMPILED_TEMPLATES);

/** The JavaScript source of a template's compiled form (what Handlebars.precompile returns), for the build. */
export function precompileSource(source: string): string {
  return loadCompiler().precompile(source, COMPILE_OPTIONS) as unknown as string;
}

function templateSpec(source: string): TemplateSpec {
  let spec = compiledSpecs.get(source);
  if (!spec) {
    // What Handlebars.compile does, in two visible steps: compile to JavaScript source, then evaluate it.
    spec = new Function(`return ${precompileSource(source)};`)() as TemplateSpec;
    compiledSpecs.set(source, spec);
  }
  return spec;
}

export type TemplateName =
  | "ecosystem.config.js"
  | "package.json"
  | "systemd/app.service"
  | "systemd/health.service"
  | "systemd/health.timer"
  | "logrotate/logrotate.conf"
  | "scripts/config.sh"
  | "scripts/command.sh";

export interface Renderer {
  /**
   * Renders a template. The view is plain data that is not modified once rendered: the renderer
   * keeps its copy of the view (see ownPropertiesOnly) for the next template rendered from it.
   */
  render(name: TemplateName, view: object): string;
}

/** Builds an isolated environment from a templates folder (tests pass their own to prove strictness). */
export function createRenderer(templatesDir: string = TEMPLATES_DIR): Renderer {
  const env = HandlebarsRuntime.create();
  for (const [name, helper] of Object.entries(HELPERS)) env.registerHelper(name, helper);
  for (const name of STRICT_BLOCK_HELPERS) env.registerHelper(name, strictBlockHelper(name, env.helpers[name] as HelperFn));
  env.registerHelper("lookup", (object: unknown, field: unknown) => {
    if (object === null || typeof object !== "object" || !Object.prototype.hasOwnProperty.call(object, field as PropertyKey))
      throw new Error(`template: {{lookup}} of ${String(field)}, which is not a field`);
    return (object as Record<PropertyKey, unknown>)[field as PropertyKey];
  });
  const partialsDir = path.join(templatesDir, "partials");
  for (const file of safeReaddir(partialsDir)) {
    const partialName = file.replace(/\..*$/, "");
    env.registerPartial(partialName, env.template(templateSpec(readFileSync(path.join(partialsDir, file), "utf8"))));
  }
  const compiled = new Map<string, TemplateDelegate>();
  const viewCopies = new WeakMap<object, object>();
  return {
    render(name, view) {
      let template = compiled.get(name);
      if (!template) {
        template = env.template(templateSpec(readFileSync(path.join(templatesDir, `${name}.hbs`), "utf8")));
        compiled.set(name, template);
      }
      let copy = viewCopies.get(view);
      if (!copy) viewCopies.set(view, (copy = ownPropertiesOnly(view)));
      return template(copy, { allowProtoPropertiesByDefault: false, allowProtoMethodsByDefault: false });
    },
  };
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}
