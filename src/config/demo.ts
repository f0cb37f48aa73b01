import type { ConfigFile } from './schema.js';
import { parseConfigFile } from './load.js';

export const DEMO_ISSUER = 'https://atrium.local/demo';
export const DEMO_AUDIENCE = 'atrium';

export interface DemoConfigOptions {
  /** The dev key pair's public half (demo tokens are signed with its private half). */
  publicJwk: Record<string, unknown>;
  kid: string;
  alg: string;
  /** The reference model server started alongside the gateway. */
  modelServerUrl: string;
}

const CHURN_FEATURES = [
  'tenureMonths',
  'monthlySpend',
  'supportTickets',
  'daysSinceLastLogin',
  'lifetimeValue',
];
const FRAUD_FEATURES = ['amount', 'itemCount', 'isInternational', 'paymentAttempts', 'hourOfDay'];

/**
 * The configuration `npm start` runs with when no config file is given: two tenants with
 * different isolation strategies, plans, model versions and features, so the demo shows what
 * differs between tenants.
 */
export function buildDemoConfig(options: DemoConfigOptions): ConfigFile {
  return parseConfigFile(
    {
      server: {
        playground: true,
        // A front-end under development on this machine (any port) may call the demo.
        cors: { origins: ['http://localhost:*', 'http://127.0.0.1:*'] },
      },
      // A laptop's gateway: /metrics on the main port, for clients on this host only.
      telemetry: { metrics: { onMainPort: 'loopback' } },
      auth: {
        issuer: DEMO_ISSUER,
        audience: DEMO_AUDIENCE,
        algorithms: [options.alg],
        keys: [{ kid: options.kid, alg: options.alg, jwk: options.publicJwk }],
      },
      inference: { backends: { local: { url: options.modelServerUrl } } },
      tenants: [
        {
          id: 'acme',
          displayName: 'Acme Corporation',
          plan: 'pro',
          data: { strategy: 'schema' },
          features: ['fraud'],
          models: {
            churn: {
              backend: 'local',
              model: 'churn',
              version: '2',
              thresholds: { low: 0, medium: 0.35, high: 0.7 },
              features: CHURN_FEATURES,
            },
            fraud: {
              backend: 'local',
              model: 'fraud',
              version: '2',
              thresholds: { legit: 0, review: 0.5, block: 0.85 },
              features: FRAUD_FEATURES,
            },
          },
        },
        {
          id: 'globex',
          displayName: 'Globex Inc.',
          plan: 'free',
          data: { strategy: 'row' },
          models: {
            churn: {
              backend: 'local',
              model: 'churn',
              version: '1',
              thresholds: { low: 0, high: 0.5 },
              features: CHURN_FEATURES,
            },
          },
        },
      ],
    },
    'the built-in demo configuration',
  );
}
