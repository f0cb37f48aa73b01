import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import {
  type PlanLimits,
  TENANT_ID_PATTERN,
  type TenantConfig,
  tenantSchema,
} from '../config/schema.js';
import { describeIssues } from '../config/load.js';
import { GatewayError } from '../errors.js';
import {
  tenantConfigChannel,
  tenantConfigKey,
  tenantConfigRevisionKey,
  tenantIndexKey,
} from '../store/keys.js';
import { type Clock, type Store, SYSTEM_CLOCK, type Unsubscribe } from '../store/types.js';
import type { Logger } from '../telemetry/logger.js';
import type { TenantRegistry } from './registry.js';

/**
 * Tenant configuration changed at run time, shared by every replica through the store.
 *
 * Model: the config file declares the base tenants; run-time *records* in the store override
 * them, one per tenant id, under `tenantConfigKey(id)`:
 * - `config`: a full tenant config (validated with the file's `tenantSchema`) that replaces
 *   the file's entry, or creates a tenant the file does not declare;
 * - `status`: a suspend/resume override on top of whichever config applies, so a tenant the
 *   file declares can be suspended without restating its config;
 * - `deleted`: a tombstone: the tenant is not served, whatever the file says (a later `put`
 *   brings it back). `reset` drops the record so the file's entry applies again.
 * Ids with a record are listed in one set (`tenantIndexKey()`, outside every tenant's slot).
 *
 * Propagation: a writer stores the record, adds the id to the index, sets a new revision
 * (`tenantConfigRevisionKey()`) and publishes the id on `tenantConfigChannel()`. Each replica
 * re-reads that tenant's record when the message arrives (milliseconds) and applies it to
 * its registry. Pub/sub loses messages while a replica is disconnected, so each replica also
 * polls the revision (one GET per `pollIntervalMs`) and re-reads everything when it changed:
 * that is the reconciliation after a reconnect, with no reconnect hook needed in the store.
 *
 * Writes are last-writer-wins per tenant (operator actions are rare and serialised by people,
 * not by the store); a record that fails validation on a replica is logged and ignored there,
 * keeping the tenant as it was.
 */

/** What is stored under `tenantConfigKey(id)`. */
export interface TenantConfigRecord {
  readonly config?: TenantConfig | undefined;
  readonly status?: 'active' | 'suspended' | undefined;
  readonly deleted?: true | undefined;
  /** ISO time of the write, for operators. */
  readonly updatedAt: string;
}

const recordSchema = z.object({
  config: tenantSchema.optional(),
  status: z.enum(['active', 'suspended']).optional(),
  deleted: z.literal(true).optional(),
  updatedAt: z.string(),
});

/** Parses a stored record; `undefined` for absent, throws `Error` naming the problem otherwise. */
export function parseTenantConfigRecord(
  id: string,
  text: string | null,
): TenantConfigRecord | undefined {
  if (text === null) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new Error(`tenant ${id}: stored record is not JSON`);
  }
  const result = recordSchema.safeParse(raw);
  if (!result.success) throw new Error(describeIssues(result.error, `the record of tenant ${id}`));
  if (result.data.config !== undefined && result.data.config.id !== id) {
    throw new Error(`tenant ${id}: stored record names tenant ${result.data.config.id}`);
  }
  return result.data;
}

/**
 * The config a record makes effective on top of the file's entry (`base`); `undefined` when
 * the tenant is not served.
 */
export function effectiveTenantConfig(
  base: TenantConfig | undefined,
  record: TenantConfigRecord | undefined,
): TenantConfig | undefined {
  if (record?.deleted) return undefined;
  const config = record?.config ?? base;
  if (config === undefined) return undefined;
  const status = record?.status ?? config.status;
  return status === config.status ? config : { ...config, status };
}

function assertId(id: unknown): asserts id is string {
  if (typeof id !== 'string' || !TENANT_ID_PATTERN.test(id)) {
    throw new GatewayError(
      'BAD_USER_INPUT',
      `A tenant id is a lowercase DNS label such as "acme"; found ${JSON.stringify(id) ?? String(id)}.`,
      { extensions: { reason: 'INVALID_TENANT_ID' } },
    );
  }
}

export interface TenantConfigAdminOptions {
  store: Pick<Store, 'get' | 'mget' | 'set' | 'del' | 'sadd' | 'srem' | 'smembers' | 'publish'>;
  /** Plans a config may name; when given, an unknown plan is refused before anything is written. */
  plans?: Readonly<Record<string, PlanLimits>> | undefined;
  /** Ids that may not become tenants (e.g. the operator tenant of the admin endpoint). */
  reservedIds?: readonly string[] | undefined;
  clock?: Clock | undefined;
}

export interface StoredTenantConfig {
  readonly id: string;
  /** `undefined` when the index names an id whose record is gone or unreadable. */
  readonly record: TenantConfigRecord | undefined;
  /** Why the record could not be read, if so. */
  readonly error?: string | undefined;
}

/**
 * Operator actions on run-time tenant config (used by `npm run tenants` and `/admin/tenants`).
 * Validation failures reject with a `BAD_USER_INPUT` GatewayError (its `extensions.issues`
 * list each problem); store failures reject with the store's `StoreError`.
 */
export interface TenantConfigAdmin {
  list(): Promise<StoredTenantConfig[]>;
  get(id: string): Promise<TenantConfigRecord | undefined>;
  /** Validates and stores a full tenant config (it replaces any earlier record of the id). */
  put(input: unknown): Promise<TenantConfig>;
  /** Suspends or resumes, keeping whichever config applies. */
  setStatus(id: string, status: 'active' | 'suspended'): Promise<TenantConfigRecord>;
  /** Stops serving the tenant everywhere (a tombstone that outranks the config file). */
  delete(id: string): Promise<void>;
  /** Drops the run-time record: the config file's entry (if any) applies again. */
  reset(id: string): Promise<boolean>;
}

export function createTenantConfigAdmin(options: TenantConfigAdminOptions): TenantConfigAdmin {
  const { store } = options;
  const clock = options.clock ?? SYSTEM_CLOCK;
  const reserved = new Set(options.reservedIds ?? []);

  async function announce(id: string): Promise<void> {
    // The revision first: if the publish is lost (or fails), pollers still see the change.
    await store.set(tenantConfigRevisionKey(), randomUUID());
    await store.publish(tenantConfigChannel(), id);
  }

  async function write(id: string, record: TenantConfigRecord): Promise<void> {
    await store.set(tenantConfigKey(id), JSON.stringify(record));
    await store.sadd(tenantIndexKey(), [id]);
    await announce(id);
  }

  async function read(id: string): Promise<TenantConfigRecord | undefined> {
    const text = await store.get(tenantConfigKey(id));
    try {
      return parseTenantConfigRecord(id, text);
    } catch (error) {
      // An unreadable record is replaced by the next write; say so rather than fail the action.
      throw new GatewayError('BAD_USER_INPUT', (error as Error).message, {
        extensions: { reason: 'INVALID_STORED_RECORD' },
      });
    }
  }

  const now = () => new Date(clock.now()).toISOString();

  return {
    async list() {
      const ids = (await store.smembers(tenantIndexKey())).sort();
      const texts = await store.mget(ids.map((id) => tenantConfigKey(id)));
      return ids.map((id, i) => {
        try {
          return { id, record: parseTenantConfigRecord(id, texts[i] ?? null) };
        } catch (error) {
          return { id, record: undefined, error: (error as Error).message };
        }
      });
    },

    async get(id) {
      assertId(id);
      return read(id);
    },

    async put(input) {
      const result = tenantSchema.safeParse(input, { reportInput: true });
      if (!result.success) {
        throw new GatewayError(
          'BAD_USER_INPUT',
          describeIssues(result.error, 'the tenant config'),
          {
            extensions: {
              reason: 'INVALID_TENANT_CONFIG',
              issues: result.error.issues.map((issue) => ({
                path: issue.path.map(String).join('.'),
                message: issue.message,
              })),
            },
          },
        );
      }
      const config = result.data;
      if (reserved.has(config.id)) {
        throw new GatewayError('BAD_USER_INPUT', `The id ${config.id} is reserved.`, {
          extensions: { reason: 'RESERVED_TENANT_ID' },
        });
      }
      if (options.plans !== undefined && options.plans[config.plan] === undefined) {
        throw new GatewayError(
          'BAD_USER_INPUT',
          `plan ${JSON.stringify(config.plan)} is not one of ${Object.keys(options.plans).join(', ')}.`,
          { extensions: { reason: 'UNKNOWN_PLAN' } },
        );
      }
      await write(config.id, { config, updatedAt: now() });
      return config;
    },

    async setStatus(id, status) {
      assertId(id);
      const existing = await read(id);
      if (existing?.deleted) {
        throw new GatewayError('BAD_USER_INPUT', `Tenant ${id} is deleted; put it again first.`, {
          status: 404,
          extensions: { reason: 'NOT_FOUND' },
        });
      }
      const record: TenantConfigRecord = { config: existing?.config, status, updatedAt: now() };
      await write(id, record);
      return record;
    },

    async delete(id) {
      assertId(id);
      await write(id, { deleted: true, updatedAt: now() });
    },

    async reset(id) {
      assertId(id);
      const existed = await store.del(tenantConfigKey(id));
      await store.srem(tenantIndexKey(), [id]);
      await announce(id);
      return existed;
    },
  };
}

export interface LiveTenantConfigOptions {
  store: Pick<Store, 'get' | 'mget' | 'smembers' | 'subscribe'>;
  registry: TenantRegistry;
  /** The config file's tenants: what records override, and what `reset` falls back to. */
  baseTenants: readonly TenantConfig[];
  /** How often the revision is polled (catch-up after missed messages). Default 2000 ms. */
  pollIntervalMs?: number | undefined;
  log?: Logger | undefined;
}

export interface LiveTenantConfig {
  /**
   * Subscribes and applies the store's records once. Never rejects because of the store: if
   * it is down, the file's tenants are served and the poll catches up once it is back.
   */
  start(): Promise<void>;
  /** Re-reads every record now and applies the differences; resolves `false` if the store failed. */
  reconcile(): Promise<boolean>;
  stop(): Promise<void>;
}

/** Keeps `registry` in step with the store's records: see the module comment. */
export function createLiveTenantConfig(options: LiveTenantConfigOptions): LiveTenantConfig {
  const { store, registry, log } = options;
  const pollIntervalMs = options.pollIntervalMs ?? 2_000;
  if (!(Number.isFinite(pollIntervalMs) && pollIntervalMs >= 10)) {
    throw new TypeError(
      `createLiveTenantConfig: pollIntervalMs must be ≥ 10; received ${pollIntervalMs}`,
    );
  }
  const base = new Map(options.baseTenants.map((config) => [config.id, config]));
  // What this replica applied, as JSON, so unchanged tenants are not re-applied (listeners
  // such as pool caches react to every upsert).
  const applied = new Map<string, string>(
    options.baseTenants.map((config) => [config.id, JSON.stringify(config)]),
  );
  let lastRevision: string | null | undefined;
  let dirty = true;
  let unsubscribe: Unsubscribe | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  // Every read-and-apply runs in this one queue, so an older read never lands after a newer one.
  let queue: Promise<unknown> = Promise.resolve();
  let polling = false;

  function enqueue<T>(task: () => Promise<T>): Promise<T> {
    const run = queue.then(task, task);
    queue = run.catch(() => undefined);
    return run;
  }

  function apply(id: string, config: TenantConfig | undefined): void {
    const json = config === undefined ? undefined : JSON.stringify(config);
    if (applied.get(id) === json) return;
    if (config === undefined) {
      registry.remove(id);
      applied.delete(id);
      log?.info({ tenant: id }, 'tenant removed by run-time config');
      return;
    }
    try {
      registry.upsert(config);
      applied.set(id, json as string);
      log?.info({ tenant: id, status: config.status }, 'tenant config applied');
    } catch (error) {
      // E.g. a plan this replica does not know: keep serving the tenant as it was.
      log?.error({ tenant: id, err: (error as Error).message }, 'tenant config rejected');
    }
  }

  function applyRecord(id: string, text: string | null): void {
    let record: TenantConfigRecord | undefined;
    try {
      record = parseTenantConfigRecord(id, text);
    } catch (error) {
      log?.error({ tenant: id, err: (error as Error).message }, 'tenant config record ignored');
      return;
    }
    apply(id, effectiveTenantConfig(base.get(id), record));
  }

  async function syncOne(id: string): Promise<void> {
    try {
      applyRecord(id, await store.get(tenantConfigKey(id)));
    } catch (error) {
      dirty = true;
      log?.warn({ tenant: id, err: (error as Error).message }, 'tenant config read failed');
    }
  }

  async function reconcileNow(revision: string | null | undefined): Promise<boolean> {
    try {
      const ids = await store.smembers(tenantIndexKey());
      const texts = await store.mget(ids.map((id) => tenantConfigKey(id)));
      const stored = new Map(ids.map((id, i) => [id, texts[i] ?? null]));
      for (const id of new Set([...base.keys(), ...applied.keys(), ...stored.keys()])) {
        applyRecord(id, stored.get(id) ?? null);
      }
      lastRevision = revision;
      dirty = false;
      return true;
    } catch (error) {
      dirty = true;
      log?.warn({ err: (error as Error).message }, 'tenant config reconcile failed');
      return false;
    }
  }

  async function readRevision(): Promise<string | null | undefined> {
    try {
      return await store.get(tenantConfigRevisionKey());
    } catch {
      return undefined;
    }
  }

  async function subscribe(): Promise<void> {
    if (unsubscribe !== undefined || stopped) return;
    try {
      const off = await store.subscribe(tenantConfigChannel(), (message) => {
        if (!TENANT_ID_PATTERN.test(message)) return;
        void enqueue(() => syncOne(message));
      });
      if (stopped) await off();
      else unsubscribe = off;
      // Whatever changed before the subscription was live is caught by this reconcile.
      dirty = true;
    } catch (error) {
      log?.warn({ err: (error as Error).message }, 'tenant config subscription failed; retrying');
    }
  }

  async function poll(): Promise<void> {
    if (polling || stopped) return;
    polling = true;
    try {
      await subscribe();
      const revision = await readRevision();
      if (revision === undefined) {
        dirty = true;
        return;
      }
      if (dirty || revision !== lastRevision) {
        await enqueue(() => reconcileNow(revision));
      }
    } finally {
      polling = false;
    }
  }

  return {
    async start() {
      await poll();
      timer = setInterval(() => void poll(), pollIntervalMs);
      timer.unref();
    },
    async reconcile() {
      const revision = await readRevision();
      return enqueue(() => reconcileNow(revision));
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      await unsubscribe?.().catch(() => undefined);
      unsubscribe = undefined;
      await queue;
    },
  };
}
