import { describe, expect, it } from 'vitest';
import { applyEnv, parseConfigFile } from '../../src/config/load.js';
import { otlpTracesUrl } from '../../src/telemetry/tracing.js';
import { readYaml } from './support.js';

describe('atrium.example.yaml', () => {
  it('is a valid production config with metrics off the main port and tracing configured', () => {
    const file = parseConfigFile(readYaml('atrium.example.yaml'), 'atrium.example.yaml');
    expect(file.tenants.map((t) => t.id)).toEqual(['acme', 'globex', 'initech']);
    expect(file.tenants.map((t) => t.data.strategy)).toEqual(['schema', 'row', 'database']);
    expect(file.auth?.jwks?.url).toMatch(/^https:\/\//);
    expect(file.server.playground).toBe(false);
    expect(file.server.cors.credentials).toBe(false);
    expect(file.tenants[0]?.cors.origins).toHaveLength(2);
    expect(file.telemetry.metrics.port).toBe(9464);
    expect(file.telemetry.metrics.port).not.toBe(file.server.port);
    expect(otlpTracesUrl(file.telemetry.tracing)).toBe('http://otel-collector:4318/v1/traces');
    // Every model names a configured backend, and every plan exists.
    for (const tenant of file.tenants) {
      expect(Object.keys(file.plans)).toContain(tenant.plan);
      for (const model of Object.values(tenant.models)) {
        expect(Object.keys(file.inference.backends)).toContain(model.backend);
      }
    }
    // The environment still wins, as documented at the top of the file.
    const config = applyEnv(
      file,
      { DATABASE_URL: 'postgres://db/atrium', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://other:4318' },
      'production',
    );
    expect(config.data.url).toBe('postgres://db/atrium');
    expect(otlpTracesUrl(config.telemetry.tracing)).toBe('http://other:4318/v1/traces');
  });
});
