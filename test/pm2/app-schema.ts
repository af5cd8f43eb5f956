/**
 * Converts PM2's own option schema (`node_modules/pm2/lib/API/schema.json`) into a
 * JSON Schema (draft-07) for ONE entry of an ecosystem file's `apps` array.
 *
 * PM2's format is a map from option name to a descriptor:
 *   type            "string" | "number" | "boolean" | "array" | "object", or an array of them
 *   alias           a name or list of names accepted in place of the option
 *   regex           checked (by PM2) against string values only
 *   min / max       checked (by PM2) against number values only
 *   require         marks `script` as required
 *   default         value PM2 fills in when the option is absent
 *   docDefault, docDescription   documentation only
 *   desc, ext_type  error text for `regex`; unit conversion of strings ("10s", "1G")
 * A key containing a backslash is a regular expression matched against the remaining
 * keys of the app (`^env_\S*$`: `env_production`, ...).
 *
 * Semantics taken from PM2's validator (`lib/tools/Config.js`, `validateJSON`/`_valid`):
 * - every option also has an automatic camelCase alias (`kill_timeout` -> `killTimeout`);
 * - types are `Object.prototype.toString` classes, so `object` excludes arrays and null;
 * - when an option admits `number`, any non-boolean value `v` with `!isNaN(v)` (numeric
 *   strings such as "5000", "", "0x10", single-element arrays) is coerced with
 *   `parseFloat` before the type, regex and min/max checks;
 * - `null` / `undefined` count as absent; keys that are neither options, aliases nor
 *   matched by a regex key are silently dropped.
 *
 * The JSON Schema produced here accepts a SUBSET of what PM2 accepts (anything it
 * accepts passes PM2's validation), and is deliberately stricter where PM2 is lax:
 * JSON types are matched exactly (no numeric strings for numbers, no null), unknown
 * keys are errors (`additionalProperties: false`) instead of being dropped, and `name`
 * is required as well as `script`.
 *
 * This module is pure: no file system, no imports of PM2.
 */

const KNOWN_TYPES = ['string', 'number', 'boolean', 'array', 'object'] as const;
type Pm2Type = (typeof KNOWN_TYPES)[number];

const KNOWN_DESCRIPTOR_KEYS = new Set([
  'type',
  'alias',
  'regex',
  'desc',
  'min',
  'max',
  'require',
  'default',
  'docDefault',
  'docDescription',
  'ext_type',
]);

/** Options deploygen always emits and therefore requires, on top of PM2's `require`d ones. */
const DEPLOYGEN_REQUIRED = ['name', 'script'];

/**
 * Matches exactly the strings `s` for which JavaScript's `isNaN(s)` is false, i.e. the
 * strings PM2 coerces to a number when an option admits `number`: StringToNumber's
 * grammar (optional surrounding white space, empty string, decimal with sign and
 * exponent, Infinity, unsigned 0x/0o/0b integers).
 */
export const JS_NUMERIC_STRING_PATTERN =
  '^\\s*(?:[+-]?(?:Infinity|(?:\\d+\\.?\\d*|\\.\\d+)(?:[eE][+-]?\\d+)?)|0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+)?\\s*$';

type JsonSchema = { [key: string]: unknown };

interface Option {
  name: string;
  types: Pm2Type[];
  aliases: string[];
  schema: JsonSchema;
  required: boolean;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * PM2's automatic camelCase alias, exactly as Config.js computes it: `kill_timeout` ->
 * `killTimeout`; parts after the first are capitalised unless they are one character long.
 */
export function pm2CamelAlias(key: string): string {
  return key
    .split('_')
    .map((part, i) => (i !== 0 && part.length > 1 ? part[0]!.toUpperCase() + part.slice(1) : part))
    .join('');
}

function fail(option: string, message: string): never {
  throw new Error(`pm2 option schema: "${option}": ${message}`);
}

function decodeHtmlEntities(text: string): string {
  return text
    .replace(/&#(\d+);/g, (_, code: string) => String.fromCodePoint(Number(code)))
    .replace(/&#x([0-9a-f]+);/gi, (_, code: string) => String.fromCodePoint(parseInt(code, 16)))
    .replace(/&quot;/g, '"')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

function readTypes(name: string, descriptor: Record<string, unknown>): Pm2Type[] {
  const raw = descriptor['type'];
  const list = typeof raw === 'string' ? [raw] : raw;
  if (!Array.isArray(list) || list.length === 0) fail(name, 'missing or empty "type"');
  const types: Pm2Type[] = [];
  for (const t of list) {
    if (typeof t !== 'string' || !(KNOWN_TYPES as readonly string[]).includes(t)) {
      fail(name, `unsupported type ${JSON.stringify(t)}`);
    }
    if (!types.includes(t as Pm2Type)) types.push(t as Pm2Type);
  }
  return types;
}

function readAliases(name: string, descriptor: Record<string, unknown>): string[] {
  const raw = descriptor['alias'];
  if (raw === undefined) return [];
  const list = typeof raw === 'string' ? [raw] : raw;
  if (!Array.isArray(list) || !list.every((a): a is string => typeof a === 'string' && a !== '')) {
    fail(name, `"alias" must be a name or a list of names, got ${JSON.stringify(raw)}`);
  }
  return list;
}

function optionSchema(name: string, descriptor: Record<string, unknown>): { schema: JsonSchema; types: Pm2Type[] } {
  for (const key of Object.keys(descriptor)) {
    // Fail loudly when a new pm2 version adds semantics this converter does not model.
    if (!KNOWN_DESCRIPTOR_KEYS.has(key)) fail(name, `unknown descriptor field "${key}"`);
  }
  const types = readTypes(name, descriptor);
  const schema: JsonSchema = { type: types.length === 1 ? types[0] : types };

  const regex = descriptor['regex'];
  if (regex !== undefined) {
    if (typeof regex !== 'string') fail(name, '"regex" must be a string');
    // PM2 tests the regex against string values only, exactly like JSON Schema's `pattern`.
    if (types.includes('string')) schema['pattern'] = regex;
  }

  for (const [pm2Key, jsonKey] of [
    ['min', 'minimum'],
    ['max', 'maximum'],
  ] as const) {
    const bound = descriptor[pm2Key];
    if (bound === undefined) continue;
    if (typeof bound !== 'number') fail(name, `"${pm2Key}" must be a number`);
    // PM2 checks bounds on numbers only (`minimum`/`maximum` likewise ignore non-numbers)...
    if (types.includes('number')) schema[jsonKey] = bound;
  }
  // ...but when the option admits both numbers and strings, PM2 first coerces numeric
  // strings ("50") to numbers and then applies the bound, which a JSON Schema cannot
  // express on a string: reject numeric strings so that what we accept, PM2 accepts.
  if (
    types.includes('number') &&
    types.includes('string') &&
    (descriptor['min'] !== undefined || descriptor['max'] !== undefined)
  ) {
    schema['not'] = { type: 'string', pattern: JS_NUMERIC_STRING_PATTERN };
  }

  if (descriptor['default'] !== undefined) schema['default'] = descriptor['default'];

  const parts: string[] = [];
  const doc = descriptor['docDescription'];
  if (typeof doc === 'string' && doc.trim() !== '') parts.push(decodeHtmlEntities(doc.trim()));
  const desc = descriptor['desc'];
  if (typeof desc === 'string' && desc.trim() !== '') parts.push(`Format: ${desc.trim()}`);
  const docDefault = descriptor['docDefault'];
  if (docDefault !== undefined && descriptor['default'] === undefined) {
    parts.push(`PM2 default: ${typeof docDefault === 'string' ? docDefault : JSON.stringify(docDefault)}`);
  }
  if (parts.length > 0) schema['description'] = parts.map((p) => (p.endsWith('.') ? p : `${p}.`)).join(' ');

  return { schema, types };
}

function sortKeysDeep(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeysDeep);
  if (!isPlainObject(value)) return value;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort()) out[key] = sortKeysDeep(value[key]);
  return out;
}

/**
 * Turns PM2's `lib/API/schema.json` (parsed) into a draft-07 JSON Schema for one PM2
 * app object. Throws on anything in `raw` it does not understand.
 */
export function pm2OptionSchemaToJsonSchema(raw: unknown, source: { pm2Version: string }): object {
  if (!isPlainObject(raw)) throw new Error('pm2 option schema: expected an object of options');
  if (!/^\S+$/.test(source.pm2Version)) throw new Error(`pm2 option schema: bad pm2 version ${JSON.stringify(source.pm2Version)}`);

  const options: Option[] = [];
  const patternProperties: Record<string, JsonSchema> = {};

  for (const [name, descriptor] of Object.entries(raw)) {
    if (!isPlainObject(descriptor)) fail(name, 'descriptor must be an object');
    if (name.includes('\\')) {
      // PM2 (Config.js) treats any key containing a backslash as a regular expression.
      if (descriptor['alias'] !== undefined) fail(name, 'a regular-expression key cannot have aliases');
      if (descriptor['require'] !== undefined) fail(name, 'a regular-expression key cannot be required');
      try {
        new RegExp(name, 'u');
      } catch (error) {
        fail(name, `not a valid regular expression: ${(error as Error).message}`);
      }
      patternProperties[name] = optionSchema(name, descriptor).schema;
      continue;
    }
    const { schema, types } = optionSchema(name, descriptor);
    const aliases = [...readAliases(name, descriptor), pm2CamelAlias(name)].filter(
      (alias, i, all) => alias !== name && all.indexOf(alias) === i,
    );
    const require = descriptor['require'];
    if (require !== undefined && typeof require !== 'boolean') fail(name, '"require" must be a boolean');
    options.push({ name, types, aliases, schema, required: require === true });
  }

  const properties: Record<string, JsonSchema> = {};
  const owner = new Map<string, string>();
  for (const option of options) owner.set(option.name, option.name);
  for (const option of options) {
    properties[option.name] = option.schema;
    for (const alias of option.aliases) {
      const taken = owner.get(alias);
      if (taken !== undefined) fail(option.name, `alias "${alias}" is also a name of "${taken}"`);
      owner.set(alias, option.name);
      properties[alias] = {
        $ref: `#/properties/${option.name}`,
      };
    }
  }
  for (const pattern of Object.keys(patternProperties)) {
    const re = new RegExp(pattern, 'u');
    for (const key of owner.keys()) {
      // PM2 only applies regex keys to keys that are not options; JSON Schema would apply both.
      if (re.test(key)) fail(pattern, `matches the option name "${key}"`);
    }
  }

  const required = [
    ...new Set([...options.filter((o) => o.required).map((o) => o.name), ...DEPLOYGEN_REQUIRED]),
  ].sort();
  for (const name of required) {
    if (!(name in properties)) throw new Error(`pm2 option schema: required option "${name}" is not a PM2 option`);
  }

  const schema: JsonSchema = {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $comment: `generated from pm2@${source.pm2Version} lib/API/schema.json by test/pm2/app-schema.ts; regenerate with npx vitest run test/pm2-schema.test.ts -u`,
    title: 'PM2 app (one entry of an ecosystem file apps array)',
    description:
      `The options pm2@${source.pm2Version} validates (lib/tools/Config.js), with their aliases (aliases are $refs to the option). ` +
      'Stricter than PM2 on purpose: JSON types match exactly (PM2 also coerces numeric strings to numbers and treats null as absent), ' +
      'unknown keys are errors (PM2 silently drops them), name is required as well as script.',
    type: 'object',
    properties,
    additionalProperties: false,
    required,
  };
  if (Object.keys(patternProperties).length > 0) schema['patternProperties'] = patternProperties;
  return sortKeysDeep(schema) as object;
}
