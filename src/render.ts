// The one Handlebars environment: compiled strictly, no HTML escaping, and only named
// per-target quoting helpers. Templates are compiled once per process.
import Handlebars from "handlebars";
import { readFileSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { shellQuote, systemdQuote, escapeSystemdSpecifiers, jsString, jsValue } from "./quote.js";

export const TEMPLATES_DIR = fileURLToPath(new URL("../templates/", import.meta.url));

const HELPERS = {
  /** POSIX shell word. */
  sh: (value: unknown) => shellQuote(requireString(value, "sh")),
  /** Double-quoted systemd word. */
  systemd: (value: unknown) => systemdQuote(requireString(value, "systemd")),
  /** Unquoted systemd path value ("%" doubled). */
  systemdPath: (value: unknown) => escapeSystemdSpecifiers(requireString(value, "systemdPath")),
  /** JavaScript string literal. */
  js: (value: unknown) => jsString(requireString(value, "js")),
  /** JavaScript/JSON value. */
  json: (value: unknown) => jsValue(value),
};

function requireString(value: unknown, helper: string): string {
  if (typeof value === "number") return String(value);
  if (typeof value !== "string") throw new Error(`template helper ${helper} got ${value === undefined ? "a missing field" : typeof value}, expected a string`);
  return value;
}

const COMPILE_OPTIONS: CompileOptions = {
  strict: true,
  noEscape: true,
  knownHelpersOnly: true,
  knownHelpers: Object.fromEntries(Object.keys(HELPERS).map((name) => [name, true])),
  preventIndent: true,
};

type CompileOptions = Parameters<typeof Handlebars.compile>[1];

export type TemplateName =
  | "ecosystem.config.js"
  | "systemd/app.service"
  | "systemd/health.service"
  | "systemd/health.timer"
  | "scripts/deploygen-lib.sh"
  | "scripts/deploy.sh"
  | "scripts/start.sh"
  | "scripts/stop.sh"
  | "scripts/health-check.sh"
  | "scripts/install-systemd.sh";

export interface Renderer {
  render(name: TemplateName, view: object): string;
}

/** Builds an isolated environment from a templates folder (tests pass their own to prove strictness). */
export function createRenderer(templatesDir: string = TEMPLATES_DIR): Renderer {
  const env = Handlebars.create();
  for (const [name, helper] of Object.entries(HELPERS)) env.registerHelper(name, helper);
  const partialsDir = path.join(templatesDir, "partials");
  for (const file of safeReaddir(partialsDir)) {
    const partialName = file.replace(/\..*$/, "");
    env.registerPartial(partialName, env.compile(readFileSync(path.join(partialsDir, file), "utf8"), COMPILE_OPTIONS));
  }
  const compiled = new Map<string, HandlebarsTemplateDelegate>();
  return {
    render(name, view) {
      let template = compiled.get(name);
      if (!template) {
        template = env.compile(readFileSync(path.join(templatesDir, `${name}.hbs`), "utf8"), COMPILE_OPTIONS);
        compiled.set(name, template);
      }
      return template(view, { allowProtoPropertiesByDefault: false, allowProtoMethodsByDefault: false });
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
