import { randomUUID } from 'node:crypto';
import { findIsolationConflicts } from '../config/isolation-targets.js';
import { describeIssues } from '../config/load.js';
import {
  type ConfigFile,
  type PlanLimits,
  TENANT_ID_PATTERN,
  type TenantConfig,
  tenantSchema,
} from '../config/schema.js';
import { GatewayError } from '../errors.js';
import type { ControlDocument, ControlStore } from '../store/control-store.js';
import { tenantConfigChannel, tenantConfigRevisionKey, trustedDocumentKey } from '../store/keys.js';
import { type Clock, type Store, SYSTEM_CLOCK } from '../store/types.js';
import {
  claimedTenantConfig,
  importStoreIntoControl,
  parseTenantConfigRecord,
  readStoreRecords,
  rebuildStore,
  type TenantConfigRecord,
  writeStoreRecord,
} from './tenant-records.js';

/**
 * Operator actions on run-time tenant config and trusted documents: the one implementation
 * behind `npm run tenants` and `/admin/tenants`, so both validate alike.
 *
 * Every action is validated against the effective set (the config file's tenants plus every
 * run-time record, tombstones included: a deleted tenant's rows are still where its config
 * points), so no two tenant ids ever share a schema, a database or a row id, and no reserved
 * id becomes a tenant. Then it is written:
 * - with a durable copy (`control`, PostgreSQL): committed there first under one lock shared
 *   by every writer (the check and the write are one transaction), then the shared store is
 *   updated with the same revision, or rebuilt from the copy when the store was not at the
 *   revision this change started from (it lost state, or another writer was in between);
 * - without one: written to the shared store only (last writer wins).
 * Then every replica is told on the change channel (`live-config.ts`).
 *
 * Validation failures reject with a coded `GatewayError` (400, 404); store failures with the
 * store's `StoreError`. A failure after the durable commit leaves the change recorded: replicas
 * apply it from the durable copy at their next poll, and repeating the action is harmless.
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
  /** Registers trusted documents (already parsed and hashed by the caller). */
  putDocuments(id: string, documents: readonly TrustedDocumentEntry[]): Promise<void>;
  /** Unregisters trusted documents by hash; resolves how many were registered. */
  removeDocuments(id: string, hashes: readonly string[]): Promise<number>;
}

/** A trusted document ready to store: its SHA-256 hex and its exact text. */
export interface TrustedDocumentEntry {
  readonly hash: string;
  readonly body: string;
}

export interface StoredTenantConfig {
  readonly id: string;
  /** `undefined` when the index names an id whose record is gone or unreadable. */
  readonly record: TenantConfigRecord | undefined;
  /** Why the record could not be read, if so. */
  readonly error?: string | undefined;
}

export interface TenantConfigAdminOptions {
  store: Pick<Store, 'get' | 'mget' | 'set' | 'del' | 'sadd' | 'srem' | 'smembers' | 'publish'>;
  /** The durable copy (when a database is configured); written first, read for `list`/`get`. */
  control?: ControlStore | undefined;
  /** The config file's tenants: the base of the effective set changes are checked against. */
  baseTenants?: readonly TenantConfig[] | undefined;
  /** Plans a config may name; when given, an unknown plan is refused before anything is written. */
  plans?: Readonly<Record<string, PlanLimits>> | undefined;
  /** Ids that may not become tenants (e.g. the operator tenant of the admin endpoint). */
  reservedIds?: readonly string[] | undefined;
  /** Schemas no tenant may use beyond the built-in ones (a configured control schema). */
  reservedSchemas?: readonly string[] | undefined;
  clock?: Clock | undefined;
}

/** The rules a config file sets for operator actions: the gateway and the CLI use these alike. */
export function adminRulesFromConfig(
  config: Pick<ConfigFile, 'tenants' | 'plans' | 'admin' | 'liveConfig'>,
): Pick<TenantConfigAdminOptions, 'baseTenants' | 'plans' | 'reservedIds' | 'reservedSchemas'> {
  return {
    baseTenants: config.tenants,
    plans: config.plans,
    // The operator tenant must never be served: its claim is what admin tokens carry.
    reservedIds: config.admin.tenant === undefined ? [] : [config.admin.tenant],
    reservedSchemas: [config.liveConfig.controlSchema],
  };
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

function badInput(message: string, reason: string, extra: Record<string, unknown> = {}) {
  return new GatewayError('BAD_USER_INPUT', message, { extensions: { reason, ...extra } });
}

function notFound(id: string): GatewayError {
  return new GatewayError('BAD_USER_INPUT', `Tenant ${id} not found.`, {
    status: 404,
    extensions: { reason: 'NOT_FOUND' },
  });
}

/** Refuses anything but a tenant id (a lowercase DNS label), naming what was found. */
export function assertTenantIdInput(id: unknown): asserts id is string {
  if (typeof id !== 'string' || !TENANT_ID_PATTERN.test(id)) {
    const found = typeof id === 'string' ? JSON.stringify(id.slice(0, 80)) : typeof id;
    throw badInput(
      `A tenant id is a lowercase DNS label such as "acme"; found ${found}.`,
      'INVALID_TENANT_ID',
    );
  }
}

/** What one action writes: records (text, or `null` to drop) and documents. */
interface Plan {
  readonly tenants?: Map<string, string | null>;
  readonly putDocuments?: readonly ControlDocument[];
  readonly removeDocuments?: readonly { tenantId: string; hash: string }[];
}

export function createTenantConfigAdmin(options: TenantConfigAdminOptions): TenantConfigAdmin {
  const { store, control } = options;
  const clock = options.clock ?? SYSTEM_CLOCK;
  const reserved = new Set(options.reservedIds ?? []);
  const base = new Map((options.baseTenants ?? []).map((config) => [config.id, config]));
  const now = () => new Date(clock.now()).toISOString();

  function parseOrUndefined(id: string, text: string | undefined): TenantConfigRecord | undefined {
    try {
      return parseTenantConfigRecord(id, text ?? null);
    } catch {
      return undefined;
    }
  }

  function readRecord(id: string, records: ReadonlyMap<string, string>) {
    const text = records.get(id);
    try {
      return parseTenantConfigRecord(id, text ?? null);
    } catch (error) {
      // An unreadable record is replaced by the next write; say so rather than fail the action.
      throw badInput((error as Error).message, 'INVALID_STORED_RECORD');
    }
  }

  function assertWritable(id: unknown): asserts id is string {
    assertTenantIdInput(id);
    if (reserved.has(id)) throw badInput(`The id ${id} is reserved.`, 'RESERVED_TENANT_ID');
  }

  /**
   * Refuses a record for `id` that would make it share data with another tenant id: every
   * other id claims what its file entry and its record point at; `id` claims what its file
   * entry and `next` point at.
   */
  function checkTargets(
    id: string,
    next: TenantConfigRecord | undefined,
    records: ReadonlyMap<string, string>,
  ): void {
    const claims: Pick<TenantConfig, 'id' | 'data'>[] = [];
    for (const other of new Set([...base.keys(), ...records.keys()])) {
      if (other === id) continue;
      const fromFile = base.get(other);
      if (fromFile) claims.push(fromFile);
      const claimed = claimedTenantConfig(undefined, parseOrUndefined(other, records.get(other)));
      if (claimed) claims.push(claimed);
    }
    const first = claims.length;
    const mine = [base.get(id), next?.config].filter((c): c is TenantConfig => c !== undefined);
    const conflicts = findIsolationConflicts([...claims, ...mine], {
      reservedSchemas: options.reservedSchemas,
    }).filter((conflict) => conflict.index >= first);
    if (conflicts.length > 0) {
      throw badInput(
        `Tenant ${id} would share data with another tenant: ${conflicts
          .map((c) => `${c.field}: ${c.message}`)
          .join('; ')}.`,
        'ISOLATION_CONFLICT',
        { issues: conflicts.map((c) => ({ path: c.field, message: c.message })) },
      );
    }
  }

  async function announce(ids: Iterable<string>): Promise<void> {
    for (const id of new Set(ids)) await store.publish(tenantConfigChannel(), id);
  }

  async function applyToStore(plan: Plan): Promise<number> {
    for (const [id, text] of plan.tenants ?? []) await writeStoreRecord(store, id, text);
    for (const d of plan.putDocuments ?? []) {
      // No TTL: a registered document stays until it is removed.
      await store.set(trustedDocumentKey(d.tenantId, d.hash), d.body);
    }
    let removed = 0;
    for (const d of plan.removeDocuments ?? []) {
      if (await store.del(trustedDocumentKey(d.tenantId, d.hash))) removed += 1;
    }
    return removed;
  }

  /** Validates (`decide` throws to refuse) and writes one action; resolves documents removed. */
  async function commit(
    decide: (records: ReadonlyMap<string, string>) => Plan,
  ): Promise<{ removed: number }> {
    let plan: Plan = {};
    let removed: number;
    if (control) {
      await importStoreIntoControl(store, control);
      const committed = await control.commit((tenants) => {
        plan = decide(tenants);
        return plan;
      });
      if (committed === undefined) throw new TypeError('commit: the decision wrote nothing');
      removed = committed.removedDocuments;
      // The store follows the copy: incrementally when it was at the revision this change
      // started from, otherwise rebuilt whole (it lost state, or another writer came between).
      if ((await store.get(tenantConfigRevisionKey())) === committed.previous) {
        await applyToStore(plan);
        await store.set(tenantConfigRevisionKey(), committed.revision);
      } else {
        await rebuildStore(store, await control.snapshot());
        await applyToStore({ removeDocuments: plan.removeDocuments });
      }
    } else {
      plan = decide(await readStoreRecords(store));
      removed = await applyToStore(plan);
      // The revision last: if the publish is lost, pollers still see the change.
      await store.set(tenantConfigRevisionKey(), randomUUID());
    }
    await announce([
      ...(plan.tenants?.keys() ?? []),
      ...(plan.putDocuments ?? []).map((d) => d.tenantId),
      ...(plan.removeDocuments ?? []).map((d) => d.tenantId),
    ]);
    return { removed };
  }

  async function allRecords(): Promise<ReadonlyMap<string, string>> {
    return control ? control.tenants() : readStoreRecords(store);
  }

  return {
    async list() {
      const records = await allRecords();
      return [...records.keys()].sort().map((id) => {
        try {
          return { id, record: parseTenantConfigRecord(id, records.get(id) ?? null) };
        } catch (error) {
          return { id, record: undefined, error: (error as Error).message };
        }
      });
    },

    async get(id) {
      assertTenantIdInput(id);
      return readRecord(id, await allRecords());
    },

    async put(input) {
      const result = tenantSchema.safeParse(input, { reportInput: true });
      if (!result.success) {
        throw badInput(describeIssues(result.error, 'the tenant config'), 'INVALID_TENANT_CONFIG', {
          issues: result.error.issues.map((issue) => ({
            path: issue.path.map(String).join('.'),
            message: issue.message,
          })),
        });
      }
      const config = result.data;
      assertWritable(config.id);
      if (options.plans !== undefined && options.plans[config.plan] === undefined) {
        throw badInput(
          `plan ${JSON.stringify(config.plan)} is not one of ${Object.keys(options.plans).join(', ')}.`,
          'UNKNOWN_PLAN',
        );
      }
      const record: TenantConfigRecord = { config, updatedAt: now() };
      await commit((records) => {
        checkTargets(config.id, record, records);
        return { tenants: new Map([[config.id, JSON.stringify(record)]]) };
      });
      return config;
    },

    async setStatus(id, status) {
      assertWritable(id);
      let written: TenantConfigRecord | undefined;
      await commit((records) => {
        const existing = readRecord(id, records);
        if (existing?.deleted) {
          throw new GatewayError('BAD_USER_INPUT', `Tenant ${id} is deleted; put it again first.`, {
            status: 404,
            extensions: { reason: 'NOT_FOUND' },
          });
        }
        if (existing?.config === undefined && !base.has(id)) throw notFound(id);
        written = { config: existing?.config, status, updatedAt: now() };
        checkTargets(id, written, records);
        return { tenants: new Map([[id, JSON.stringify(written)]]) };
      });
      return written as TenantConfigRecord;
    },

    async delete(id) {
      assertWritable(id);
      await commit((records) => {
        const existing = readRecord(id, records);
        const config = existing?.config;
        if (config === undefined && !base.has(id)) throw notFound(id);
        const tombstone: TenantConfigRecord = { deleted: true, config, updatedAt: now() };
        return { tenants: new Map([[id, JSON.stringify(tombstone)]]) };
      });
    },

    async reset(id) {
      assertWritable(id);
      let existed = false;
      await commit((records) => {
        existed = records.has(id);
        checkTargets(id, undefined, records);
        return { tenants: new Map([[id, null]]) };
      });
      return existed;
    },

    async putDocuments(id, documents) {
      assertWritable(id);
      for (const d of documents) {
        if (!SHA256_HEX.test(d.hash) || typeof d.body !== 'string') {
          throw new TypeError('putDocuments: each document needs a SHA-256 hex hash and a body');
        }
      }
      await commit(() => ({
        putDocuments: documents.map((d) => ({ tenantId: id, hash: d.hash, body: d.body })),
      }));
    },

    async removeDocuments(id, hashes) {
      assertWritable(id);
      for (const hash of hashes) {
        if (typeof hash !== 'string' || !SHA256_HEX.test(hash)) {
          throw badInput(
            `${JSON.stringify(String(hash).slice(0, 80))} is not a SHA-256 hex hash.`,
            'BAD_DOCUMENTS',
          );
        }
      }
      const { removed } = await commit(() => ({
        removeDocuments: hashes.map((hash) => ({ tenantId: id, hash })),
      }));
      return removed;
    },
  };
}
