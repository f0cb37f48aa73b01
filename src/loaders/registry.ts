import DataLoader from 'dataloader';

/** Largest batch sent as one call; bigger batches are split by DataLoader. */
export const DEFAULT_MAX_BATCH_SIZE = 1024;

export interface LoaderOptions<K, C> {
  cacheKeyFn?: ((key: K) => C) | undefined;
}

/**
 * The per-request loaders of one tenant: one DataLoader per binding and argument shape
 * (`Author.books(first: 5)`), created on first use and dying with the request, so a cache
 * can never serve another tenant or outlive a request. Every loader's name carries the tenant.
 */
export interface LoaderRegistry {
  readonly tenantId: string;
  /** The loader known as `id`, created with `batch` on first use. */
  get<K, V, C = K>(
    id: string,
    batch: DataLoader.BatchLoadFn<K, V>,
    options?: LoaderOptions<K, C>,
  ): DataLoader<K, V, C>;
  /** The loader `id` if this request created it. */
  peek<K, V, C = K>(id: string): DataLoader<K, V, C> | undefined;
  /** How many loaders this request created. */
  readonly size: number;
}

export function createLoaderRegistry(
  tenantId: string,
  maxBatchSize = DEFAULT_MAX_BATCH_SIZE,
): LoaderRegistry {
  const loaders = new Map<string, DataLoader<unknown, unknown, unknown>>();
  return {
    tenantId,
    get<K, V, C = K>(
      id: string,
      batch: DataLoader.BatchLoadFn<K, V>,
      options: LoaderOptions<K, C> = {},
    ) {
      let loader = loaders.get(id) as DataLoader<K, V, C> | undefined;
      if (!loader) {
        loader = new DataLoader<K, V, C>(batch, {
          maxBatchSize,
          name: `${id}:${tenantId}`,
          ...(options.cacheKeyFn ? { cacheKeyFn: options.cacheKeyFn } : {}),
        });
        loaders.set(id, loader as DataLoader<unknown, unknown, unknown>);
      }
      return loader;
    },
    peek<K, V, C = K>(id: string) {
      return loaders.get(id) as DataLoader<K, V, C> | undefined;
    },
    get size() {
      return loaders.size;
    },
  };
}
