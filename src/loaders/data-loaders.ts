import DataLoader from 'dataloader';
import type {
  CustomerRecord,
  DataSource,
  OrderRecord,
  TenantDataRef,
} from '../backends/data/types.js';
import { GatewayError } from '../errors.js';

/** Ids are opaque strings; anything longer than this is not one of ours, so it never reaches SQL. */
const MAX_ID_LENGTH = 64;

export interface DataLoaders {
  customerById: DataLoader<string, CustomerRecord | null>;
  orderById: DataLoader<string, OrderRecord | null>;
  /** Most recent orders per customer; one loader per `first`, so a batch has one limit. */
  ordersByCustomer(first: number): DataLoader<string, OrderRecord[]>;
}

export interface DataLoadersOptions {
  tenant: TenantDataRef;
  dataSource: DataSource;
  /** Largest batch sent as one statement; bigger batches are split by DataLoader. */
  maxBatchSize?: number;
}

function invalidId(id: string): GatewayError | undefined {
  return id.length === 0 || id.length > MAX_ID_LENGTH
    ? new GatewayError('BAD_USER_INPUT', `Invalid id: must be 1-${MAX_ID_LENGTH} characters.`)
    : undefined;
}

/**
 * Runs one batch: invalid keys get their own error value, the valid ones go to the backend in
 * one call, and a failed call becomes an error value for each key of the batch (not a rejected
 * batch), so one bad key never fails its neighbours.
 */
async function loadBatch<V, R>(
  keys: readonly string[],
  fetch: (valid: string[]) => Promise<R[]>,
  group: (rows: R[]) => Map<string, V>,
  missing: V,
): Promise<(V | Error)[]> {
  const valid = [...new Set(keys.filter((k) => invalidId(k) === undefined))];
  let byKey: Map<string, V>;
  try {
    byKey = valid.length > 0 ? group(await fetch(valid)) : new Map();
  } catch (error) {
    const failure = error instanceof Error ? error : new Error(String(error));
    return keys.map(() => failure);
  }
  return keys.map((key) => invalidId(key) ?? byKey.get(key) ?? missing);
}

function byId<R extends { id: string }>(rows: R[]): Map<string, R> {
  return new Map(rows.map((row) => [row.id, row]));
}

function byCustomerId(rows: OrderRecord[]): Map<string, OrderRecord[]> {
  const grouped = new Map<string, OrderRecord[]>();
  for (const row of rows) {
    const list = grouped.get(row.customerId);
    if (list) list.push(row);
    else grouped.set(row.customerId, [row]);
  }
  return grouped;
}

/**
 * The per-request loaders of one tenant. They are created with the request's context and die
 * with it, so their caches can never serve another tenant or outlive a request.
 */
export function createDataLoaders({
  tenant,
  dataSource,
  maxBatchSize = 500,
}: DataLoadersOptions): DataLoaders {
  const customerById = new DataLoader<string, CustomerRecord | null>(
    (ids) => loadBatch(ids, (valid) => dataSource.customersByIds(tenant, valid), byId, null),
    { maxBatchSize, name: `customerById:${tenant.id}` },
  );
  const orderById = new DataLoader<string, OrderRecord | null>(
    (ids) => loadBatch(ids, (valid) => dataSource.ordersByIds(tenant, valid), byId, null),
    { maxBatchSize, name: `orderById:${tenant.id}` },
  );
  const byFirst = new Map<number, DataLoader<string, OrderRecord[]>>();
  const ordersByCustomer = (first: number) => {
    let loader = byFirst.get(first);
    if (!loader) {
      loader = new DataLoader<string, OrderRecord[]>(
        (ids) =>
          loadBatch(
            ids,
            (valid) => dataSource.ordersByCustomerIds(tenant, valid, first),
            byCustomerId,
            [],
          ),
        { maxBatchSize, name: `ordersByCustomer(${first}):${tenant.id}` },
      );
      byFirst.set(first, loader);
    }
    return loader;
  };
  return { customerById, orderById, ordersByCustomer };
}
