import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import type { ErrorObject, ValidateFunction } from 'ajv';

/**
 * The committed JSON Schema of one PM2 app, generated from PM2's own option schema by
 * test/pm2/app-schema.ts, next to this file.
 */
const SCHEMA_URL = new URL('./pm2-app.schema.json', import.meta.url);

let validator: ValidateFunction | undefined;

function getValidator(): ValidateFunction {
  if (validator === undefined) {
    const schema: unknown = JSON.parse(readFileSync(SCHEMA_URL, 'utf8'));
    if (typeof schema !== 'object' || schema === null) throw new Error(`${SCHEMA_URL.pathname}: not a JSON Schema`);
    const ajv = new Ajv({ allErrors: true, verbose: true, allowUnionTypes: true });
    validator = ajv.compile(schema);
  }
  return validator;
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

function accessor(segment: string): string {
  if (/^(0|[1-9][0-9]*)$/.test(segment)) return `[${segment}]`;
  return IDENTIFIER.test(segment) ? `.${segment}` : `[${JSON.stringify(segment)}]`;
}

/** `/env/A~1B` -> `.env["A/B"]` */
function pointerToPath(pointer: string): string {
  if (pointer === '') return '';
  return pointer
    .split('/')
    .slice(1)
    .map((segment) => accessor(segment.replace(/~1/g, '/').replace(/~0/g, '~')))
    .join('');
}

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `string ${JSON.stringify(value)}`;
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}

function formatError(index: number, error: ErrorObject): string {
  let where = `apps[${index}]${pointerToPath(error.instancePath)}`;
  let message: string;
  switch (error.keyword) {
    case 'additionalProperties': {
      const key = String((error.params as { additionalProperty: string }).additionalProperty);
      where += accessor(key);
      message = 'not a PM2 option (PM2 would silently ignore it)';
      break;
    }
    case 'required': {
      const key = String((error.params as { missingProperty: string }).missingProperty);
      where += accessor(key);
      message = 'is required';
      break;
    }
    case 'type': {
      const type = (error.params as { type: string | string[] }).type;
      const expected = (Array.isArray(type) ? type : String(type).split(',')).join(' or ');
      message = `must be ${expected}, got ${describeValue(error.data)}`;
      break;
    }
    case 'pattern':
      message = `must match ${(error.params as { pattern: string }).pattern}, got ${describeValue(error.data)}`;
      break;
    case 'not':
      message = `must be a number, not a numeric string (got ${describeValue(error.data)})`;
      break;
    default:
      message = error.message ?? `fails "${error.keyword}"`;
  }
  return `${where}: ${message}`;
}

/**
 * Validates generated PM2 app objects (the entries of an ecosystem file's `apps`)
 * against PM2's own option schema, as committed in test/pm2/pm2-app.schema.json.
 */
export function validatePm2Apps(apps: unknown[]): { ok: true } | { ok: false; errors: string[] } {
  const validate = getValidator();
  const errors: string[] = [];
  apps.forEach((app, index) => {
    if (!validate(app)) {
      for (const error of validate.errors ?? []) errors.push(formatError(index, error));
    }
  });
  return errors.length === 0 ? { ok: true } : { ok: false, errors };
}
