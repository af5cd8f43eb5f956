import { createRequire } from 'node:module';
import { Ajv } from 'ajv';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { JS_NUMERIC_STRING_PATTERN, pm2OptionSchemaToJsonSchema } from './pm2/app-schema.js';
import { loadInstalledPm2OptionSchema } from './pm2/installed.js';
import { validatePm2Apps } from './pm2/validate-apps.js';

type Schema = {
  properties: Record<string, { type?: string | string[]; $ref?: string; pattern?: string; minimum?: number }>;
  patternProperties?: Record<string, unknown>;
  required: string[];
  additionalProperties: boolean;
  $comment: string;
};

/** PM2's own validator, the reference the converted schema must agree with. */
interface Pm2Config {
  schema: Record<string, { alias?: string[] }>;
  validateJSON(app: unknown): { errors: string[]; config: Record<string, unknown> };
}
const pm2Config = createRequire(import.meta.url)('pm2/lib/tools/Config.js') as Pm2Config;
const pm2Errors = (app: Record<string, unknown>): string[] => pm2Config.validateJSON(app).errors;

let schema: Schema;
let pm2Version: string;
let validate: (app: unknown) => boolean;

beforeAll(async () => {
  const installed = await loadInstalledPm2OptionSchema();
  pm2Version = installed.version;
  schema = pm2OptionSchemaToJsonSchema(installed.raw, { pm2Version }) as Schema;
  validate = new Ajv({ allErrors: true, allowUnionTypes: true }).compile(schema);
});

/** An app as deploygen emits it (one per runtime shape). */
const backend = {
  name: 'codeframe-staging-backend',
  namespace: 'codeframe-staging',
  script: '/srv/codeframe/.venv/bin/python',
  args: ['-m', 'uvicorn', 'codeframe.ui.server:app', '--host', '0.0.0.0', '--port', '14200'],
  cwd: '/srv/codeframe',
  interpreter: 'none',
  exec_mode: 'fork',
  instances: 1,
  env: { PYTHONPATH: '.', PORT: '14200', HOST: '127.0.0.1', CODEFRAME_ENV: 'staging' },
  out_file: '/srv/codeframe/logs/codeframe-staging-backend.out.log',
  error_file: '/srv/codeframe/logs/codeframe-staging-backend.err.log',
  merge_logs: true,
  time: true,
  kill_timeout: 10000,
  listen_timeout: 60000,
  autorestart: true,
  max_restarts: 10,
  min_uptime: 5000,
  exp_backoff_restart_delay: 100,
};
const frontend = {
  ...backend,
  name: 'codeframe-production-frontend',
  namespace: 'codeframe-production',
  script: '/srv/codeframe/web-ui/node_modules/.bin/next',
  args: ['start', '-H', '127.0.0.1', '-p', '15100'],
  cwd: '/srv/codeframe/web-ui',
  interpreter: 'node',
  exec_mode: 'cluster',
  instances: 2,
  env: { NODE_ENV: 'production', PORT: '15100' },
  min_uptime: '10s',
};

describe('PM2 app JSON Schema generated from pm2 lib/API/schema.json', () => {
  it('is the committed test/pm2/pm2-app.schema.json', async () => {
    expect(schema.$comment).toBe(
      `generated from pm2@${pm2Version} lib/API/schema.json by test/pm2/app-schema.ts; regenerate with npx vitest run test/pm2-schema.test.ts -u`,
    );
    await expect(JSON.stringify(schema, null, 2) + '\n').toMatchFileSnapshot('./pm2/pm2-app.schema.json');
  });

  it('is deterministic and has sorted keys', async () => {
    const again = pm2OptionSchemaToJsonSchema((await loadInstalledPm2OptionSchema()).raw, { pm2Version });
    expect(JSON.stringify(again)).toBe(JSON.stringify(schema));
    expect(Object.keys(schema.properties)).toEqual(Object.keys(schema.properties).sort());
  });

  it('has every option and alias PM2 itself recognises (Config.js renders camelCase aliases)', () => {
    for (const [option, descriptor] of Object.entries(pm2Config.schema)) {
      if (option.includes('\\')) {
        expect(schema.patternProperties).toHaveProperty([option]);
        continue;
      }
      expect(schema.properties[option], option).toBeDefined();
      expect(schema.properties[option]?.$ref, option).toBeUndefined();
      for (const alias of descriptor.alias ?? []) {
        if (alias !== option) expect(schema.properties[alias], `${option} alias ${alias}`).toEqual({ $ref: `#/properties/${option}` });
      }
    }
    const names = new Set(Object.entries(pm2Config.schema).flatMap(([o, d]) => [o, ...(d.alias ?? [])]));
    expect(Object.keys(schema.properties).filter((k) => !names.has(k))).toEqual([]);
    expect(schema.additionalProperties).toBe(false);
    expect(schema.required).toEqual(['name', 'script']);
  });

  it.each([
    ['name', { type: 'string' }],
    ['namespace', { type: 'string' }],
    ['script', { type: 'string' }],
    ['args', { type: ['array', 'string'] }],
    ['cwd', { type: 'string' }],
    ['exec_interpreter', { type: 'string' }],
    ['interpreter', { $ref: '#/properties/exec_interpreter' }],
    ['exec_mode', { type: 'string', pattern: '^(cluster|fork)(_mode)?$' }],
    ['instances', { type: 'number' }],
    ['env', { type: ['object', 'string'] }],
    ['out_file', { type: 'string' }],
    ['error_file', { type: 'string' }],
    ['merge_logs', { type: 'boolean' }],
    ['time', { type: 'boolean' }],
    ['kill_timeout', { type: 'number' }],
    ['listen_timeout', { type: 'number' }],
    ['autorestart', { type: 'boolean', default: true }],
    ['max_restarts', { type: 'number', minimum: 0 }],
    ['min_uptime', { type: ['number', 'string'], pattern: '^\\d+(h|m|s)?$', minimum: 100 }],
    ['exp_backoff_restart_delay', { type: 'number' }],
  ])('maps %s', (key, expected) => {
    expect(schema.properties[key]).toMatchObject(expected);
  });

  it('accepts the apps deploygen emits, as PM2 does', () => {
    for (const app of [backend, frontend]) {
      expect(validate(app)).toBe(true);
      expect(pm2Errors(app)).toEqual([]);
    }
    // Other shapes PM2 documents.
    const other = { ...backend, env_production: { A: '1' }, exec_mode: 'cluster_mode', max_memory_restart: '1G', args: '-m x' };
    expect(validate(other)).toBe(true);
    expect(pm2Errors(other)).toEqual([]);
  });

  it.each<[string, Record<string, unknown>, boolean]>([
    // [case, change to a valid app, does PM2 itself reject it?]
    ['unknown key (typo)', { kill_timout: 5000 }, false],
    ['unknown key (camelCase typo)', { killTimout: 5000 }, false],
    ['wrong type: kill_timeout string', { kill_timeout: 'soon' }, true],
    ['wrong type: autorestart string', { autorestart: 'yes' }, true],
    ['wrong type: env array', { env: ['A=1'] }, true],
    ['wrong type: args number', { args: 42 }, true],
    ['wrong type: env_<name> number', { env_production: 1 }, true],
    ['wrong type: alias interpreter number', { interpreter: 1 }, true],
    ['exec_mode outside its regex', { exec_mode: 'thread' }, true],
    ['min_uptime below its minimum', { min_uptime: 50 }, true],
    ['min_uptime numeric string below its minimum', { min_uptime: '50' }, true],
    ['min_uptime outside its regex', { min_uptime: '10x' }, true],
    ['max_restarts below its minimum', { max_restarts: -1 }, true],
    ['max_memory_restart outside its regex', { max_memory_restart: '1.5G' }, true],
    ['numeric string for a number (PM2 coerces it)', { kill_timeout: '5000' }, false],
    ['null (PM2 treats it as absent)', { kill_timeout: null }, false],
  ])('rejects %s', (_, change, pm2Rejects) => {
    const app = { ...backend, ...change };
    expect(validate(app)).toBe(false);
    expect(pm2Errors(app).length > 0).toBe(pm2Rejects);
  });

  it('requires name and script', () => {
    const { name: _name, ...noName } = backend;
    const { script: _script, ...noScript } = backend;
    expect(validate(noName)).toBe(false);
    expect(validate(noScript)).toBe(false);
  });

  it('never accepts an app PM2 rejects (fuzzed against PM2 Config.validateJSON)', () => {
    const keys = [
      ...Object.keys(schema.properties),
      'env_production',
      'env_',
      'kill_timout',
    ];
    const value = fc.oneof(
      fc.constantFrom(0, -1, 1, 50, 99, 100, 1.5, 5000, -0.5),
      fc.constantFrom('', ' ', '0', '50', '100', ' 150 ', '1e3', '0x10', 'Infinity', '10s', '2m', '1h', '10x', '1G', '1.5G', '512M'),
      fc.constantFrom('fork', 'cluster', 'fork_mode', 'cluster_mode', 'thread', 'none', '-m x'),
      fc.boolean(),
      fc.constantFrom([], [1], ['a', 'b'], {}, { A: '1' }),
      fc.string(),
      fc.double({ noNaN: true, noDefaultInfinity: true }),
    );
    fc.assert(
      fc.property(fc.dictionary(fc.constantFrom(...keys), value, { maxKeys: 6 }), (extra) => {
        const app = { ...backend, ...extra };
        if (validate(app)) expect(pm2Errors(app)).toEqual([]);
      }),
      { numRuns: 3000 },
    );
  });

  it('JS_NUMERIC_STRING_PATTERN matches exactly the strings for which isNaN is false', () => {
    const re = new RegExp(JS_NUMERIC_STRING_PATTERN, 'u');
    const samples = ['', ' ', '\n7\t', '1', '-1', '+1.', '.5', '1e3', '1E-3', '-Infinity', '0x1F', '0b101', '0o17', '-0x1', '1_000', '.', 'e3', 'NaN', '1.2.3', '\u00a01\ufeff'];
    for (const s of samples) expect(re.test(s), JSON.stringify(s)).toBe(!isNaN(s as unknown as number));
    fc.assert(
      fc.property(fc.stringMatching(/^[\s0-9a-fA-FxXoObB.eE+\-Infity]{0,8}$/), (s) => re.test(s) === !isNaN(s as unknown as number)),
      { numRuns: 5000 },
    );
  });

  it('documents a PM2 quirk: a falsy value of an option that has an alias is dropped', () => {
    // Config.validateJSON does `conf[key] || (conf[key] = json[alias])`, so 0/false/'' is
    // replaced by the (absent) alias and the option falls back to PM2's default
    // (max_restarts: 0 becomes 16 in God.js). Options without an underscore or explicit
    // alias (autorestart, time, instances) are not affected. Valid per the schema; a
    // generator must not rely on these values reaching PM2.
    const { config } = pm2Config.validateJSON({ ...backend, max_restarts: 0, merge_logs: false, kill_timeout: 0, autorestart: false, time: false });
    expect(config).not.toHaveProperty('max_restarts');
    expect(config).not.toHaveProperty('merge_logs');
    expect(config).not.toHaveProperty('kill_timeout');
    expect(config).toMatchObject({ autorestart: false, time: false });
  });

  it('refuses PM2 descriptors it does not understand', () => {
    const v = { pm2Version: '0.0.0' };
    expect(() => pm2OptionSchemaToJsonSchema({ script: { type: 'string', enum: ['a'] } }, v)).toThrow(/unknown descriptor field "enum"/);
    expect(() => pm2OptionSchemaToJsonSchema({ script: { type: 'date' } }, v)).toThrow(/unsupported type "date"/);
    expect(() => pm2OptionSchemaToJsonSchema({ script: { type: 'string' }, name: { type: 'string', alias: 'script' } }, v)).toThrow(/alias "script"/);
    expect(() => pm2OptionSchemaToJsonSchema([], v)).toThrow();
  });
});

describe('validatePm2Apps (committed test/pm2/pm2-app.schema.json)', () => {
  it('accepts the apps deploygen emits', () => {
    expect(validatePm2Apps([backend, frontend])).toEqual({ ok: true });
    expect(validatePm2Apps([])).toEqual({ ok: true });
  });

  it('reports every error as apps[i].<field>: <message>', () => {
    const { script: _script, ...noScript } = backend;
    const result = validatePm2Apps([
      backend,
      { ...backend, kill_timeout: 'soon', kill_timout: 1, exec_mode: 'thread' },
      { ...noScript, min_uptime: '50', 'env with space': {} },
      'not an app',
    ]);
    expect(result.ok).toBe(false);
    expect(result.ok ? [] : result.errors).toEqual([
      'apps[1].kill_timout: not a PM2 option (PM2 would silently ignore it)',
      'apps[1].exec_mode: must match ^(cluster|fork)(_mode)?$, got string "thread"',
      'apps[1].kill_timeout: must be number, got string "soon"',
      'apps[2].script: is required',
      'apps[2]["env with space"]: not a PM2 option (PM2 would silently ignore it)',
      'apps[2].min_uptime: must be a number, not a numeric string (got string "50")',
      'apps[3]: must be object, got string "not an app"',
    ]);
  });
});
