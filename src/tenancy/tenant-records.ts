import { z } from 'zod';
import { describeIssues } from '../config/load.js';
import { tenantSchema, type TenantConfig } from '../config/schema.js';
import type { ControlSnapshot, ControlStore } from '../store/control-store.js';
import {
  tenantConfigKey,
  tenantConfigRevisionKey,
  tenantIndexKey,
  trustedDocumentKey,
} from '../store/keys.js';
import type { Store } from '../store/types.js';

/**
 * Run-time tenant records and their two homes.
 *
 * The config file declares the base tenants; run-time *records* override them, one per tenant
 * id:
 * - `config`: a full tenant config (validated with the file's `tenantSchema`) that replaces
 *   the file's entry, or creates a tenant the file does not declare;
 * - `status`: a suspend/resume override on top of whichever config applies, so a tenant the
 *   file declares can be suspended without restating its config;
 * - `deleted`: a tombstone: the tenant is not served, whatever the file says (a later `put`
 *   brings it back). It keeps the config it replaced, so the tenant's schema or database
 *   stays reserved for it (its rows are still there). `reset` drops the record so the file's
 *   entry applies again.
 *
 * Homes: the shared store (Redis), where replicas read them (`tenantConfigKey(id)`, the ids in
 * `tenantIndexKey()`, the state's name in `tenantConfigRevisionKey()`), and, when a database is
 * configured, the durable copy (`store/control-store.ts`), which is written first and which the
 * store is rebuilt from when it lost them.
 */

/** One tenant's run-time record. */
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

/**
 * The config whose data a tenant id holds, served or not: the effective one, or for a
 * tombstone the config it replaced (or the file's). Isolation targets are checked over these.
 */
export function claimedTenantConfig(
  base: TenantConfig | undefined,
  record: TenantConfigRecord | undefined,
): TenantConfig | undefined {
  if (record?.deleted) return record.config ?? base;
  return effectiveTenantConfig(base, record);
}

/** Every record in the shared store, by id, as text (absent entries of the index left out). */
export async function readStoreRecords(
  store: Pick<Store, 'smembers' | 'mget'>,
): Promise<Map<string, string>> {
  const ids = (await store.smembers(tenantIndexKey())).sort();
  const texts = await store.mget(ids.map((id) => tenantConfigKey(id)));
  const records = new Map<string, string>();
  ids.forEach((id, i) => {
    const text = texts[i];
    if (typeof text === 'string') records.set(id, text);
  });
  return records;
}

/** Writes one record (or drops it, `null`) to the shared store, index included. */
export async function writeStoreRecord(
  store: Pick<Store, 'set' | 'del' | 'sadd' | 'srem'>,
  id: string,
  text: string | null,
): Promise<void> {
  if (text === null) {
    await store.del(tenantConfigKey(id));
    await store.srem(tenantIndexKey(), [id]);
  } else {
    await store.set(tenantConfigKey(id), text);
    await store.sadd(tenantIndexKey(), [id]);
  }
}

/** Documents written to the store at once during a rebuild (each is one SET). */
const REBUILD_BATCH = 100;

/**
 * Makes the shared store hold exactly the durable copy's records and at least its trusted
 * documents, then its revision (last: a replica that sees the revision sees the rest). A
 * document removed from the durable copy while the store was away stays in the store until
 * removed again: the store keeps no list of a tenant's documents to compare with.
 */
export async function rebuildStore(
  store: Pick<Store, 'set' | 'del' | 'sadd' | 'srem' | 'smembers'>,
  snapshot: ControlSnapshot,
): Promise<void> {
  const stale = (await store.smembers(tenantIndexKey())).filter((id) => !snapshot.tenants.has(id));
  for (const id of stale) await writeStoreRecord(store, id, null);
  for (const [id, text] of snapshot.tenants) await writeStoreRecord(store, id, text);
  for (let i = 0; i < snapshot.documents.length; i += REBUILD_BATCH) {
    await Promise.all(
      snapshot.documents
        .slice(i, i + REBUILD_BATCH)
        .map((d) => store.set(trustedDocumentKey(d.tenantId, d.hash), d.body)),
    );
  }
  if (snapshot.revision === null) await store.del(tenantConfigRevisionKey());
  else await store.set(tenantConfigRevisionKey(), snapshot.revision);
}

/**
 * One-time upgrade: a durable copy that was never written, next to a store that holds records
 * (written before the database copy existed), takes the store's records and revision, so the
 * first rebuild cannot wipe them. Trusted documents cannot be listed in the store and are not
 * copied: register them again once. Resolves whether anything was imported.
 */
export async function importStoreIntoControl(
  store: Pick<Store, 'get' | 'smembers' | 'mget'>,
  control: Pick<ControlStore, 'revision' | 'commit'>,
): Promise<boolean> {
  if ((await control.revision()) !== null) return false;
  const revision = await store.get(tenantConfigRevisionKey());
  if (revision === null) return false;
  const records = new Map<string, string>();
  for (const [id, text] of await readStoreRecords(store)) {
    try {
      // Garbage is left behind (the durable copy holds JSON only); replicas ignore it anyway.
      if (parseTenantConfigRecord(id, text) !== undefined) records.set(id, text);
    } catch {
      continue;
    }
  }
  const committed = await control.commit((tenants, current) =>
    current !== null || tenants.size > 0 ? undefined : { tenants: records, revision },
  );
  return committed !== undefined;
}
