import { findIsolationConflicts } from '../config/isolation-targets.js';
import { TENANT_ID_PATTERN, type TenantConfig } from '../config/schema.js';
import type { ControlStore } from '../store/control-store.js';
import { tenantConfigChannel, tenantConfigKey, tenantConfigRevisionKey } from '../store/keys.js';
import type { Store, Unsubscribe } from '../store/types.js';
import type { Logger } from '../telemetry/logger.js';
import type { TenantRegistry } from './registry.js';
import {
  effectiveTenantConfig,
  importStoreIntoControl,
  parseTenantConfigRecord,
  readStoreRecords,
  rebuildStore,
  type TenantConfigRecord,
} from './tenant-records.js';

/**
 * Keeps each replica's tenant registry in step with the run-time records (`tenant-records.ts`)
 * that operators write (`tenant-admin.ts`).
 *
 * Propagation: a writer publishes the tenant id on `tenantConfigChannel()`; each replica
 * re-reads that tenant's record from the shared store (milliseconds). Pub/sub loses messages
 * while a replica is disconnected, so each replica also polls the state's revision (one GET per
 * `pollIntervalMs`, plus one SELECT when a durable copy is configured) and re-reads everything
 * when it changed: that is the reconciliation after a reconnect.
 *
 * Sources of truth, in order:
 * 1. The durable copy (PostgreSQL), when configured and readable. When the store's revision
 *    is not the durable one (the store restarted empty, was flushed, or a writer died between
 *    the two), the replica applies the durable copy and rebuilds the store from it.
 * 2. The shared store, when it holds a revision (it is then a copy written from the durable
 *    one, or the only one there is without a database).
 * 3. Nothing: the state cannot be confirmed. A replica that never confirmed it refuses every
 *    tenant with a retryable 503 (`TENANT_CONFIG_UNCONFIRMED`, see `registry.isConfirmed`);
 *    one that did keeps what it last applied. In both cases it fails closed for suspensions:
 *    once the store has lost its revision, a missing record never turns a tenant that is
 *    refused here (suspended or deleted) into a served one — only a record that says so (an
 *    explicit resume or put), or the durable copy, does.
 * Without a database the store is the only copy: run Redis with persistence (appendonly).
 *
 * A record that fails validation on a replica, or that would make two tenants share a schema
 * or database, is logged and ignored there, keeping the tenant as it was.
 */

/** Where a replica's view of run-time tenant config comes from right now. */
export type LiveConfigState =
  /** Applied from an authoritative source (durable copy, or a store that holds a revision). */
  | 'confirmed'
  /** The store lost its revision and nothing authoritative could be read: refusals are held. */
  | 'held'
  /** Nothing read yet: requests are refused with 503 until something confirms the state. */
  | 'unconfirmed';

export interface LiveTenantConfigOptions {
  store: Pick<Store, 'get' | 'mget' | 'set' | 'del' | 'sadd' | 'srem' | 'smembers' | 'subscribe'>;
  /** The durable copy (when a database is configured): the source the store is rebuilt from. */
  control?: ControlStore | undefined;
  registry: TenantRegistry;
  /** The config file's tenants: what records override, and what `reset` falls back to. */
  baseTenants: readonly TenantConfig[];
  /** Schemas no tenant may use beyond the built-in ones (a configured control schema). */
  reservedSchemas?: readonly string[] | undefined;
  /** How often the revision is polled (catch-up after missed messages). Default 2000 ms. */
  pollIntervalMs?: number | undefined;
  /**
   * How long `start` keeps trying (every {@link UNCONFIRMED_RETRY_MS}) when the first read
   * cannot confirm the state, e.g. while the store client is still connecting. Default 2000 ms.
   */
  startWaitMs?: number | undefined;
  log?: Logger | undefined;
}

/** While unconfirmed (every tenant refused), a replica looks again this often, not every poll. */
export const UNCONFIRMED_RETRY_MS = 100;

export interface LiveTenantConfig {
  /**
   * Subscribes and applies the current state once. Never rejects because of the store or the
   * database: what cannot be read now is read by the poll once it is back (see the module
   * comment for what is served meanwhile).
   */
  start(): Promise<void>;
  /** Re-reads everything now and applies the differences; resolves `false` if nothing could be read. */
  reconcile(): Promise<boolean>;
  /** See {@link LiveConfigState}. */
  state(): LiveConfigState;
  stop(): Promise<void>;
}

/** Keeps `registry` in step with the run-time records: see the module comment. */
export function createLiveTenantConfig(options: LiveTenantConfigOptions): LiveTenantConfig {
  const { store, control, registry, log } = options;
  const pollIntervalMs = options.pollIntervalMs ?? 2_000;
  if (!(Number.isFinite(pollIntervalMs) && pollIntervalMs >= 10)) {
    throw new TypeError(
      `createLiveTenantConfig: pollIntervalMs must be ≥ 10; received ${pollIntervalMs}`,
    );
  }
  const startWaitMs = options.startWaitMs ?? 2_000;
  const base = new Map(options.baseTenants.map((config) => [config.id, config]));
  // What this replica applied, as JSON, so unchanged tenants are not re-applied (listeners
  // such as pool caches react to every upsert).
  const applied = new Map<string, string>(
    options.baseTenants.map((config) => [config.id, JSON.stringify(config)]),
  );
  /** The revision last applied; `undefined` before anything was. */
  let lastRevision: string | null | undefined;
  let dirty = true;
  /** The store lost its revision and nothing authoritative was read since: hold refusals. */
  let held = false;
  let unsubscribe: Unsubscribe | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  // Every read-and-apply runs in this one queue, so an older read never lands after a newer one.
  let queue: Promise<unknown> = Promise.resolve();
  let polling = false;
  const heldLogged = new Set<string>();
  /** Ids whose applied state came from a record: if the store then has none, it lost them. */
  const fromRecords = new Set<string>();

  function enqueue<T>(task: () => Promise<T>): Promise<T> {
    const run = queue.then(task, task);
    queue = run.catch(() => undefined);
    return run;
  }

  /** Sources whose last read failed: logged when they start failing and when they are back. */
  const failing = new Set<string>();

  /** A failure is a value (`undefined`), so one unreachable source skips to the next. */
  async function attempt<T>(what: string, read: () => Promise<T>): Promise<T | undefined> {
    try {
      const value = await read();
      if (failing.delete(what)) log?.info({ source: what }, 'tenant config source answers again');
      return value;
    } catch (error) {
      if (!failing.has(what)) {
        failing.add(what);
        log?.warn({ err: (error as Error).message, source: what }, 'tenant config read failed');
      }
      return undefined;
    }
  }

  function sharesData(id: string, config: TenantConfig): string | undefined {
    const others = registry
      .list()
      .filter((tenant) => tenant.id !== id)
      .map((tenant) => ({ id: tenant.id, data: tenant.data }));
    const conflicts = findIsolationConflicts([...others, config], {
      reservedSchemas: options.reservedSchemas,
    }).filter((conflict) => conflict.index === others.length);
    return conflicts.length === 0 ? undefined : conflicts.map((c) => c.message).join('; ');
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
    // Writers check this too; a record written by hand (or by two writers racing without a
    // durable copy) must still not reach another tenant's rows.
    const conflict = sharesData(id, config);
    if (conflict !== undefined) {
      log?.error({ tenant: id, err: conflict }, 'tenant config rejected: shares data');
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

  function refusedHere(id: string): boolean {
    const tenant = registry.get(id);
    return tenant === undefined || tenant.status !== 'active';
  }

  function applyRecord(id: string, text: string | null): void {
    let record: TenantConfigRecord | undefined;
    try {
      record = parseTenantConfigRecord(id, text);
    } catch (error) {
      log?.error({ tenant: id, err: (error as Error).message }, 'tenant config record ignored');
      return;
    }
    const config = effectiveTenantConfig(base.get(id), record);
    if (text === null && held && config?.status === 'active' && refusedHere(id)) {
      // Missing data is not a decision: the record may have been lost with the store.
      if (!heldLogged.has(id)) {
        heldLogged.add(id);
        log?.warn({ tenant: id }, 'tenant stays refused: its record is missing and unconfirmed');
      }
      return;
    }
    heldLogged.delete(id);
    apply(id, config);
    if (text === null) fromRecords.delete(id);
    else fromRecords.add(id);
  }

  function applyAll(records: ReadonlyMap<string, string>): void {
    for (const id of new Set([...base.keys(), ...applied.keys(), ...records.keys()])) {
      applyRecord(id, records.get(id) ?? null);
    }
  }

  function confirmed(revision: string | null, authoritative: boolean): void {
    lastRevision = revision;
    dirty = false;
    if (authoritative) held = false;
    registry.setConfirmed(true);
  }

  async function syncOne(id: string): Promise<void> {
    try {
      applyRecord(id, await store.get(tenantConfigKey(id)));
    } catch (error) {
      dirty = true;
      log?.warn({ tenant: id, err: (error as Error).message }, 'tenant config read failed');
    }
  }

  /** Applies the store's records; `authoritative` when the durable copy vouched for them. */
  async function fromStore(revision: string | null, authoritative: boolean): Promise<boolean> {
    const records = await attempt('store', () => readStoreRecords(store));
    if (records === undefined) {
      dirty = true;
      return false;
    }
    if (authoritative) held = false;
    applyAll(records);
    confirmed(revision, authoritative);
    return true;
  }

  /** Applies the durable copy, then (when the store answers) rebuilds the store from it. */
  async function fromControl(copy: ControlStore, rebuild: boolean): Promise<boolean> {
    const snapshot = await attempt('durable copy', () => copy.snapshot());
    if (snapshot === undefined) {
      dirty = true;
      return false;
    }
    held = false;
    applyAll(snapshot.tenants);
    confirmed(snapshot.revision, true);
    if (rebuild) {
      try {
        await rebuildStore(store, snapshot);
        log?.info({ revision: snapshot.revision }, 'shared store restored from the durable copy');
      } catch (error) {
        // The next poll sees the store still behind and tries again.
        log?.warn({ err: (error as Error).message }, 'restoring the shared store failed');
      }
    }
    return true;
  }

  async function durableRevision(copy: ControlStore, storeRevision: string | null | undefined) {
    let revision = await attempt('durable copy', () => copy.revision());
    if (revision === null && typeof storeRevision === 'string') {
      // Records written before the durable copy existed: adopt them once (tenant-records.ts).
      if (await attempt('durable copy', () => importStoreIntoControl(store, copy))) {
        log?.info('run-time tenant records copied from the shared store into the durable copy');
      }
      revision = await attempt('durable copy', () => copy.revision());
    }
    return revision;
  }

  /** One look at both sources; applies what changed. Resolves whether anything confirmed it. */
  async function check(force: boolean): Promise<boolean> {
    const storeRevision = await attempt('store', () => store.get(tenantConfigRevisionKey()));
    if (control !== undefined) {
      const durable = await durableRevision(control, storeRevision);
      if (durable === null) {
        // No operator decision was ever committed: the file is the whole truth.
        if (storeRevision === undefined || storeRevision === null) {
          if (force || dirty || lastRevision !== null) applyAll(new Map());
          confirmed(null, true);
          return true;
        }
      } else if (durable !== undefined) {
        if (storeRevision === durable) {
          if (!(force || dirty || held || storeRevision !== lastRevision)) return true;
          return enqueue(() => fromStore(storeRevision, true));
        }
        // The store lost state or fell behind: the durable copy rules, and repairs it.
        if (storeRevision === undefined && !(force || dirty) && durable === lastRevision) {
          return true;
        }
        return enqueue(() => fromControl(control, storeRevision !== undefined));
      }
      // The durable copy cannot be read: the store is all there is.
    }
    if (storeRevision === undefined) {
      dirty = true;
      return false;
    }
    if (storeRevision === null) {
      if ((typeof lastRevision === 'string' || fromRecords.size > 0) && !held) {
        held = true;
        log?.error(
          'the shared store lost the tenant config revision; refusals are held until the state is confirmed',
        );
      }
      // With a database that cannot be read now, an empty store may have lost anything.
      if (control !== undefined && lastRevision === undefined) return false;
    }
    if (!(force || dirty || storeRevision !== lastRevision)) return true;
    return enqueue(() => fromStore(storeRevision, control === undefined && !held));
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

  function schedule(): void {
    if (stopped) return;
    const delay = registry.isConfirmed()
      ? pollIntervalMs
      : Math.min(pollIntervalMs, UNCONFIRMED_RETRY_MS);
    timer = setTimeout(() => void poll().finally(schedule), delay);
    timer.unref();
  }

  async function poll(): Promise<void> {
    if (polling || stopped) return;
    polling = true;
    try {
      await subscribe();
      await check(false);
    } finally {
      polling = false;
    }
  }

  return {
    async start() {
      await poll();
      // A store client that is still connecting fails the first read: look again soon.
      const until = Date.now() + startWaitMs;
      while (!registry.isConfirmed() && !stopped && Date.now() < until) {
        await new Promise((resolve) => setTimeout(resolve, UNCONFIRMED_RETRY_MS));
        await poll();
      }
      schedule();
    },
    reconcile: () => check(true),
    state: () => (!registry.isConfirmed() ? 'unconfirmed' : held ? 'held' : 'confirmed'),
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await unsubscribe?.().catch(() => undefined);
      unsubscribe = undefined;
      await queue;
    },
  };
}
