// docs/manifest.md: a reference of every manifest field, generated from the JSON Schema that zod
// derives from src/manifest/schema.ts (so the `.describe()` texts are the only prose to keep up to
// date). Pure: schema in, Markdown out. test/docs.test.ts keeps the committed file in sync.
import { manifestJsonSchema, NAME_PATTERN, RUNTIMES } from "./manifest/schema.js";

type JsonSchema = {
  type?: string | string[];
  description?: string;
  default?: unknown;
  const?: unknown;
  enum?: unknown[];
  pattern?: string;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: JsonSchema | boolean;
  propertyNames?: JsonSchema;
  items?: JsonSchema;
  allOf?: JsonSchema[];
  anyOf?: JsonSchema[];
};

interface Section {
  /** As shown: "apps.<name>.verify". */
  path: string;
  schema: JsonSchema;
  intro?: string;
}

/** Placeholder for the keys of each map, by the map's path. */
const KEY_PLACEHOLDERS: Record<string, string> = {
  apps: "<app>",
  environments: "<environment>",
  "environments.<environment>.apps": "<app>",
};

const INTROS: Record<string, string> = {
  "": "The manifest's top level. Unknown fields are errors everywhere (a misspelt field never silently does nothing).",
  "apps.<app>":
    "One process under PM2. App names (the keys of `apps`) follow the same rule as the project name; the PM2 name is `<project>-<environment>-<app>`. Paths in an app (`script`, `verify.files`) are relative to its `cwd`.",
  "environments.<environment>":
    "One deployment target: files are generated for each (`ecosystem.<environment>.config.js`, `scripts/deploy-<environment>.sh`, ...). Every app runs in every environment.",
  "environments.<environment>.apps.<app>":
    "Fields of an app that differ in this environment; `<app>` must be a key of `apps`. A field given here replaces the app's (env is merged over it).",
};

export function anchor(heading: string): string {
  return heading
    .toLowerCase()
    .replace(/[^a-z0-9 _-]/g, "")
    .replace(/ /g, "-");
}

const code = (text: string) => `\`${text}\``;
const cell = (text: string) => text.replace(/\|/g, "\\|").replace(/\n+/g, " ");

function formatValue(value: unknown): string {
  if (typeof value === "string") return code(value);
  return code(JSON.stringify(value));
}

function typeOf(schema: JsonSchema, link: (schema: JsonSchema, path: string) => string | undefined, path: string): string {
  if (schema.const !== undefined) return formatValue(schema.const);
  if (schema.enum) return schema.enum.map(formatValue).join(" or ");
  if (schema.anyOf) return schema.anyOf.map((part, index) => typeOf(part, link, `${path}|${index}`)).join(" or ");
  const type = Array.isArray(schema.type) ? schema.type.join(" or ") : schema.type;
  if (type === "integer" || type === "number") {
    const range = schema.minimum !== undefined && schema.maximum !== undefined ? ` ${schema.minimum}–${schema.maximum}` : "";
    return `${type}${range}`;
  }
  if (type === "string") {
    const patterns = [schema.pattern, ...(schema.allOf ?? []).map((part) => part.pattern)].filter(Boolean);
    if (patterns.includes(NAME_PATTERN.source)) return `name (${schema.maxLength ? `≤ ${schema.maxLength} characters: ` : ""}lower-case letters, digits, single dashes)`;
    return "string";
  }
  if (type === "array") return schema.items ? `list of ${plural(typeOf(schema.items, link, `${path}[]`))}` : "list";
  if (type === "object") {
    const target = link(schema, path);
    const values = typeof schema.additionalProperties === "object" ? schema.additionalProperties : undefined;
    if (values) {
      const keys = schema.propertyNames?.pattern === NAME_PATTERN.source ? "name" : "variable name";
      return `map of ${keys} → ${target ?? typeOf(values, link, `${path}.*`)}`;
    }
    return target ?? "object";
  }
  return type ?? "any";
}

function plural(type: string): string {
  return type === "string" ? "strings" : type;
}

/** Collects the sections in document order: each object with properties gets one (once). */
function collectSections(root: JsonSchema): Section[] {
  const sections: Section[] = [];
  const seen = new Map<string, Section>();
  const visit = (schema: JsonSchema, path: string) => {
    const key = JSON.stringify(schema);
    if (seen.has(key)) return;
    const section: Section = { path, schema, ...(INTROS[path] ? { intro: INTROS[path] } : {}) };
    seen.set(key, section);
    sections.push(section);
    for (const [name, child] of Object.entries(schema.properties ?? {})) {
      const childPath = path === "" ? name : `${path}.${name}`;
      const values = typeof child.additionalProperties === "object" ? child.additionalProperties : undefined;
      if (child.properties && Object.keys(child.properties).length > 0 && !values) visit(child, childPath);
      else if (values?.properties && Object.keys(values.properties).length > 0) visit(values, `${childPath}.${KEY_PLACEHOLDERS[childPath] ?? "<name>"}`);
    }
  };
  visit(root, "");
  return sections;
}

export function manifestReference(schema: JsonSchema = manifestJsonSchema() as JsonSchema): string {
  const sections = collectSections(schema);
  const sectionOf = (target: JsonSchema) => sections.find((section) => JSON.stringify(section.schema) === JSON.stringify(target));
  const heading = (section: Section) => (section.path === "" ? "Top level" : code(section.path));
  const link = (target: JsonSchema): string | undefined => {
    const values = typeof target.additionalProperties === "object" ? target.additionalProperties : undefined;
    const found = sectionOf(target) ?? (values ? sectionOf(values) : undefined);
    return found ? `[${found.path === "" ? "top level" : found.path.replace(/</g, "&lt;").replace(/>/g, "&gt;")}](#${anchor(heading(found))})` : undefined;
  };
  /** A field without its own description: the same field of the app (for overrides), else a pointer to its section. */
  const fallbackDescription = (section: Section, name: string, field: JsonSchema): string => {
    if (section.path.startsWith("environments.<environment>.apps.")) {
      const appField = sections.find((candidate) => candidate.path === "apps.<app>")?.schema.properties?.[name];
      if (appField?.description) return appField.description;
    }
    const target = link(field);
    if (target) return `See ${target}.`;
    throw new Error(`docs: ${section.path === "" ? name : `${section.path}.${name}`} has no description; add .describe() to it in src/manifest/schema.ts`);
  };
  const lines: string[] = [
    "# Manifest reference",
    "",
    "<!-- Generated by src/docs.ts from the zod schema in src/manifest/schema.ts. Do not edit:",
    "     change the schema's .describe() texts, then run `npm test -- test/docs.test.ts -u`. -->",
    "",
    "The manifest is `deploygen.yaml` (or `deploygen.yml`, `deploygen.json`) in the project root;",
    "every relative path in it is relative to that folder. `deploygen validate` checks it and",
    "`deploygen schema` prints the JSON Schema editors use (`schemas/manifest.schema.json` in the",
    "package). A complete example: [fixtures/codeframe/deploygen.yaml](../fixtures/codeframe/deploygen.yaml).",
    "",
    `Names (project, apps, environments) match \`${NAME_PATTERN.source}\`. Runtimes: ${RUNTIMES.map(code).join(", ")}.`,
    "",
    "Sections: " + sections.map((section) => `[${section.path === "" ? "top level" : section.path.replace(/</g, "&lt;").replace(/>/g, "&gt;")}](#${anchor(heading(section))})`).join(" · "),
  ];
  for (const section of sections) {
    lines.push("", `## ${heading(section)}`, "");
    if (section.intro) lines.push(section.intro, "");
    lines.push("| Field | Type | Required / default | Description |", "|---|---|---|---|");
    const required = new Set(section.schema.required ?? []);
    for (const [name, field] of Object.entries(section.schema.properties ?? {})) {
      const requirement = required.has(name) ? "**required**" : field.default !== undefined ? `default ${formatValue(field.default)}` : "optional";
      const description = field.description ?? fallbackDescription(section, name, field);
      lines.push(`| ${code(name)} | ${cell(typeOf(field, link, `${section.path}.${name}`))} | ${cell(requirement)} | ${cell(description)} |`);
    }
  }
  return `${lines.join("\n")}\n`;
}
