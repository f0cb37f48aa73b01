import { describe, expect, it } from 'vitest';
import { applyEnv, ConfigError, parseConfigFile, readEnv } from '../../../src/config/load.js';
import { DEFAULT_MAX_TENANT_LABELS } from '../../../src/config/schema.js';
import { otlpTracesUrl } from '../../../src/telemetry/tracing.js';

const minimal = {
  auth: { issuer: 'https://issuer.example', audience: 'atrium', hs256Secret: 'x'.repeat(32) },
  tenants: [{ id: 'acme', displayName: 'Acme', data: { strategy: 'schema' } }],
};

describe('telemetry configuration', () => {
  it('defaults: metrics on the main port, bounded labels, tracing off', () => {
    const { telemetry } = parseConfigFile(minimal, 'test');
    expect(telemetry.maxTenantLabels).toBe(DEFAULT_MAX_TENANT_LABELS);
    expect(telemetry.metrics).toEqual({ enabled: true, onMainPort: 'off' });
    expect(otlpTracesUrl(telemetry.tracing)).toBeUndefined();
    expect(telemetry.tracing.serviceName).toBe('atrium');
  });

  it('OTEL_* variables override the file, read through readEnv only', () => {
    const file = parseConfigFile(
      { ...minimal, telemetry: { tracing: { otlpEndpoint: 'http://file:4318' } } },
      'test',
    );
    expect(otlpTracesUrl(applyEnv(file, {}, 'production').telemetry.tracing)).toBe(
      'http://file:4318/v1/traces',
    );
    const env = readEnv({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
      OTEL_SERVICE_NAME: 'atrium-eu',
      UNRELATED: 'ignored',
    });
    const config = applyEnv(file, env, 'production');
    expect(otlpTracesUrl(config.telemetry.tracing)).toBe('http://collector:4318/v1/traces');
    expect(config.telemetry.tracing.serviceName).toBe('atrium-eu');
    const traces = applyEnv(
      file,
      readEnv({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://traces:4318/custom' }),
      'production',
    );
    expect(otlpTracesUrl(traces.telemetry.tracing)).toBe('http://traces:4318/custom');
  });

  it('a bad endpoint or bound fails at start, naming the field', () => {
    expect(() =>
      applyEnv(
        parseConfigFile(minimal, 'test'),
        { OTEL_EXPORTER_OTLP_ENDPOINT: 'collector' },
        'production',
      ),
    ).toThrow(ConfigError);
    expect(() =>
      parseConfigFile({ ...minimal, telemetry: { maxTenantLabels: -1 } }, 'atrium.yaml'),
    ).toThrow(/telemetry\.maxTenantLabels/);
    expect(() =>
      parseConfigFile({ ...minimal, telemetry: { metrics: { port: 70000 } } }, 'atrium.yaml'),
    ).toThrow(/telemetry\.metrics\.port/);
  });
});
