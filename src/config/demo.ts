import { dirname } from 'node:path';
import { DEMO_EXAMPLE_DIR, type ConfigFile } from './schema.js';
import { parseConfigFile, readConfigFile } from './load.js';

/** What `npm start` serves without ATRIUM_CONFIG: the demo example's config file. */
export const DEMO_CONFIG_PATH = `${DEMO_EXAMPLE_DIR}atrium.yaml`;

export interface DemoConfigOptions {
  /** The dev key pair's public half (demo tokens are signed with its private half). */
  publicJwk: Record<string, unknown>;
  kid: string;
  alg: string;
  issuer: string;
  audience: string;
  /** The reference model server started alongside: every inference backend points at it. */
  modelServerUrl: string;
  /** The example's config file; default {@link DEMO_CONFIG_PATH}. */
  path?: string | undefined;
  /** Where the reference services demo mode starts will listen, by service name. */
  serviceUrls?: Readonly<Record<string, string>> | undefined;
}

/**
 * Demo mode's configuration: an example's config file with the gateway's dev keys as `auth`
 * and the reference model server as every inference backend, so the example runs on a laptop
 * with nothing else configured.
 */
export function buildDemoConfig(options: DemoConfigOptions): ConfigFile {
  const path = options.path ?? DEMO_CONFIG_PATH;
  const raw = readConfigFile(path);
  const file = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
  const inference = (file.inference ?? {}) as { backends?: Record<string, object> };
  const backends = Object.fromEntries(
    Object.entries(inference.backends ?? {}).map(([name, backend]) => [
      name,
      { ...backend, url: options.modelServerUrl },
    ]),
  );
  const services = Object.fromEntries(
    Object.entries((file.services ?? {}) as Record<string, object>).map(([name, service]) => [
      name,
      options.serviceUrls?.[name] ? { ...service, url: options.serviceUrls[name] } : service,
    ]),
  );
  return parseConfigFile(
    {
      ...file,
      services,
      auth: {
        issuer: options.issuer,
        audience: options.audience,
        algorithms: [options.alg],
        keys: [{ kid: options.kid, alg: options.alg, jwk: options.publicJwk }],
      },
      inference: { ...inference, backends },
    },
    path,
    dirname(path),
  );
}
