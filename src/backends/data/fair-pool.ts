import { GatewayError } from '../../errors.js';

/** What the fair pool reports, for metrics and tests. */
export interface FairPoolEvent {
  /** `queued`: the tenant is at its share or the pool is full; `acquired`: a connection is its. */
  type: 'queued' | 'acquired' | 'released' | 'timed-out';
  tenantId: string;
  /** Connections this tenant holds (or is connecting) after the event. */
  held: number;
  /** Acquisitions of this tenant waiting after the event. */
  waiting: number;
  /** Acquisitions of every tenant waiting after the event. */
  waitingTotal: number;
}

export interface FairPoolOptions<C> {
  /** Connections the pool may hold at once (the underlying pool's `max`). */
  size: number;
  /** Connections one tenant may hold at once (≤ `size`). */
  tenantShareMax: number;
  /** An acquisition waiting longer than this fails with `BACKEND_TIMEOUT`. */
  acquireTimeoutMs: number;
  /** Takes a connection from the underlying pool; never called beyond `size` at once. */
  connect(): Promise<C>;
  /** Told every queue and hand-out; exceptions are swallowed. */
  onEvent?: ((event: FairPoolEvent) => void) | undefined;
}

export interface FairPoolLease<C> {
  client: C;
  /**
   * Frees the slot for the next waiting tenant; give `client` back to the underlying pool
   * first. Idempotent.
   */
  release(): void;
}

export interface FairPool<C> {
  /** A connection for `tenantId`, within its share, or after the tenants queued before it. */
  acquire(tenantId: string): Promise<FairPoolLease<C>>;
  /** Fails every waiting acquisition (the pool is closing). */
  close(): void;
}

interface Waiter<C> {
  resolve(lease: FairPoolLease<C>): void;
  reject(error: unknown): void;
  timer: NodeJS.Timeout;
}

/**
 * Tenants' shares of one shared connection pool. No tenant holds more than `tenantShareMax`
 * connections at once, so one tenant's slow statements (a locked table, a heavy report) can
 * never take the whole pool; and when the pool is full, waiting acquisitions are served one
 * tenant at a time in turn (round robin over the tenants that wait, FIFO within a tenant), so
 * a tenant with a long queue cannot make another wait behind all of it.
 *
 * The underlying pool is asked for at most `size` connections at once, so it never queues
 * itself: all waiting happens here, where the tenant is known. Hand-written because pool
 * libraries (pg-pool, generic-pool) queue FIFO with no notion of who is asking.
 */
export function createFairPool<C>(options: FairPoolOptions<C>): FairPool<C> {
  const { size, tenantShareMax, acquireTimeoutMs } = options;
  for (const [name, value] of [
    ['size', size],
    ['tenantShareMax', tenantShareMax],
    ['acquireTimeoutMs', acquireTimeoutMs],
  ] as const) {
    if (!(Number.isInteger(value) && value >= 1)) {
      throw new TypeError(`createFairPool: ${name} must be a positive integer; found ${value}`);
    }
  }
  if (tenantShareMax > size) {
    throw new TypeError(
      `createFairPool: tenantShareMax (${tenantShareMax}) must not exceed the pool size (${size})`,
    );
  }
  /** Connections held or being connected, per tenant (entries removed at 0). */
  const held = new Map<string, number>();
  /** Waiting acquisitions per tenant; Map order is the round-robin order of the turns. */
  const queues = new Map<string, Waiter<C>[]>();
  let total = 0;
  let waitingTotal = 0;
  let closed = false;

  function report(type: FairPoolEvent['type'], tenantId: string): void {
    if (!options.onEvent) return;
    try {
      options.onEvent({
        type,
        tenantId,
        held: held.get(tenantId) ?? 0,
        waiting: queues.get(tenantId)?.length ?? 0,
        waitingTotal,
      });
    } catch {
      // An observer must never change who gets a connection.
    }
  }

  function take(tenantId: string): void {
    held.set(tenantId, (held.get(tenantId) ?? 0) + 1);
    total += 1;
  }

  function giveBack(tenantId: string): void {
    const count = (held.get(tenantId) ?? 1) - 1;
    if (count === 0) held.delete(tenantId);
    else held.set(tenantId, count);
    total -= 1;
  }

  /** Connects for a tenant whose slot is already taken; a failed connect frees the slot. */
  async function open(tenantId: string): Promise<FairPoolLease<C>> {
    let client: C;
    try {
      client = await options.connect();
    } catch (error) {
      giveBack(tenantId);
      dispatch();
      throw error;
    }
    report('acquired', tenantId);
    let released = false;
    return {
      client,
      release() {
        if (released) return;
        released = true;
        giveBack(tenantId);
        report('released', tenantId);
        dispatch();
      },
    };
  }

  /** Hands free slots to waiting tenants, one per tenant per turn. */
  function dispatch(): void {
    let progress = true;
    while (total < size && waitingTotal > 0 && progress) {
      progress = false;
      for (const [tenantId, queue] of queues) {
        if (total >= size) return;
        if ((held.get(tenantId) ?? 0) >= tenantShareMax) continue;
        const waiter = queue.shift();
        if (waiter === undefined) continue;
        waitingTotal -= 1;
        clearTimeout(waiter.timer);
        // Its turn is used: to the back of the round, or out when it has no one waiting.
        queues.delete(tenantId);
        if (queue.length > 0) queues.set(tenantId, queue);
        take(tenantId);
        open(tenantId).then(waiter.resolve, waiter.reject);
        progress = true;
        // Map iteration visits re-inserted keys again; restart the round from its new head.
        break;
      }
    }
  }

  return {
    acquire(tenantId) {
      if (closed) {
        return Promise.reject(
          new GatewayError('BACKEND_UNAVAILABLE', 'The data backend is closed'),
        );
      }
      if (
        total < size &&
        (held.get(tenantId) ?? 0) < tenantShareMax &&
        // Tenants already waiting go first: a newcomer must not overtake them.
        waitingTotal === 0
      ) {
        take(tenantId);
        return open(tenantId);
      }
      return new Promise<FairPoolLease<C>>((resolve, reject) => {
        const queue = queues.get(tenantId) ?? [];
        const waiter: Waiter<C> = {
          resolve,
          reject,
          timer: setTimeout(() => {
            const index = queue.indexOf(waiter);
            if (index === -1) return;
            queue.splice(index, 1);
            waitingTotal -= 1;
            if (queue.length === 0) queues.delete(tenantId);
            report('timed-out', tenantId);
            reject(
              new GatewayError('BACKEND_TIMEOUT', 'The data backend did not answer in time', {
                cause: new Error(`no pooled connection within ${acquireTimeoutMs} ms`),
              }),
            );
          }, acquireTimeoutMs),
        };
        queue.push(waiter);
        if (!queues.has(tenantId)) queues.set(tenantId, queue);
        waitingTotal += 1;
        report('queued', tenantId);
        // A tenant below its share may be servable now (others wait only for their share).
        dispatch();
      });
    },

    close() {
      closed = true;
      for (const queue of queues.values()) {
        for (const waiter of queue.splice(0)) {
          clearTimeout(waiter.timer);
          waiter.reject(new GatewayError('BACKEND_UNAVAILABLE', 'The data backend is closed'));
        }
      }
      queues.clear();
      waitingTotal = 0;
    },
  };
}
