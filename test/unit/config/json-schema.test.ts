import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { globSync } from 'tinyglobby';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CONFIG_JSON_SCHEMA_PATH, configJsonSchema } from '../../../scripts/config-json-schema.js';

const ROOT = new URL('../../../', import.meta.url).pathname;
const EXAMPLES = globSync(
  ['atrium.example.yaml', 'examples/*/atrium.yaml', 'deploy/**/atrium*.yaml'],
  {
    cwd: ROOT,
    absolute: true,
  },
);

function validator() {
  const ajv = new Ajv2020({ allErrors: true, strict: false });
  addFormats.default(ajv);
  return ajv.compile(JSON.parse(readFileSync(CONFIG_JSON_SCHEMA_PATH, 'utf8')) as object);
}

describe('the config file JSON Schema (docs/atrium.schema.json)', () => {
  it('is the one generated from the zod schema (else: npm run config:schema)', () => {
    expect(readFileSync(CONFIG_JSON_SCHEMA_PATH, 'utf8')).toBe(configJsonSchema());
  });

  it('accepts every example config, each of which names it for editors', () => {
    expect(EXAMPLES.length).toBeGreaterThanOrEqual(3);
    const validate = validator();
    for (const file of EXAMPLES) {
      const text = readFileSync(file, 'utf8');
      expect(text.split('\n')[0], file).toMatch(
        /^# yaml-language-server: \$schema=(\.\.\/)*docs\/atrium\.schema\.json$/,
      );
      const ok = validate(parse(text) as unknown);
      expect(validate.errors ?? [], file).toEqual([]);
      expect(ok).toBe(true);
    }
  });

  it("accepts the config embedded in the Kubernetes ConfigMap (an editor's comment cannot reach it)", () => {
    const manifest = parse(readFileSync(`${ROOT}deploy/k8s/configmap.yaml`, 'utf8')) as {
      data?: Record<string, string>;
    };
    const embedded = manifest.data?.['atrium.yaml'];
    expect(embedded).toBeTypeOf('string');
    const validate = validator();
    const ok = validate(parse(embedded ?? '') as unknown);
    expect(validate.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
  });

  it('refuses a wrong field, a wrong type and a missing tenant list', () => {
    const validate = validator();
    const base = parse(readFileSync(`${ROOT}atrium.example.yaml`, 'utf8')) as Record<
      string,
      unknown
    >;
    expect(validate({ ...base, servr: {} })).toBe(false);
    expect(validate.errors?.[0]).toMatchObject({
      keyword: 'additionalProperties',
      params: { additionalProperty: 'servr' },
    });
    expect(validate({ ...base, server: { port: 'eighty' } })).toBe(false);
    expect(validate.errors?.[0]).toMatchObject({ instancePath: '/server/port', keyword: 'type' });
    const { tenants: _t, ...noTenants } = base;
    expect(validate(noTenants)).toBe(false);
    expect(validate.errors?.[0]).toMatchObject({ keyword: 'required' });
  });
});
