import { setTimeout as sleep } from 'node:timers/promises';
import { PoolOverloadedError } from './worker-pool.js';

/**
 * The "device" of a model version, as on a GPU server: a fixed number of instances, each
 * executing one infer call at a time, and a fixed cost every call pays on its instance before
 * the real compute (kernel launch, transfers). A call waits for a free instance (first come,
 * first served), holds it for `callCostMs` of real time and then for the ONNX run on the worker
 * pool, and gives it back. The answers are the model's; only when they can come is simulated.
 */

/** The device of one model version. */
export interface DeviceSettings {
  /** Calls that may execute at once (Triton's `instance_group` count), 1..64. */
  instances: number;
  /** Milliseconds each call holds its instance before the compute runs (≥ 0). */
  callCostMs: number;
}

/** Where and when one call executed, for `recentCalls`. */
export interface DeviceCall {
  /** The instance (0-based) that executed it. */
  instance: number;
  /**
   * The device's event counter when the call took its instance and when it gave it back: one
   * count per take and per give-back, so two calls overlapped iff their intervals intersect.
   */
  began: number;
  ended: number;
}

/** The counters of one device since the last reset, for `GET /stats`. */
export interface DeviceCounters {
  instances: number;
  callCostMs: number;
  /** Calls that executed (answered or failed in the compute). */
  calls: number;
  /** Instance-milliseconds held by those calls (cost plus compute), summed over instances. */
  busyMs: number;
  /** Most instances busy at once. */
  maxBusy: number;
  /** Most calls waiting for an instance at once. */
  maxQueued: number;
  /** Instances executing a call now, and calls waiting for one now (not reset). */
  busy: number;
  queued: number;
}

/** One model version's device. */
export interface Device {
  readonly settings: DeviceSettings;
  /**
   * Waits for a free instance, holds it for the call cost and `work`, then gives it back.
   * `onExecuted` gets the call's record once it gave the instance back (also when `work`
   * failed). Rejects with {@link PoolOverloadedError} when every instance is busy and
   * `maxQueue` calls already wait.
   */
  run<T>(work: () => Promise<T>, onExecuted: (call: DeviceCall) => void): Promise<T>;
  counters(): DeviceCounters;
  /** Zeroes the counters (not the event counter, which only orders calls). */
  reset(): void;
}

/** Checks `settings` and creates an idle device. */
export function createDevice(
  key: string,
  settings: DeviceSettings,
  maxQueue: number,
  now: () => number = () => performance.now(),
): Device {
  const { instances, callCostMs } = settings;
  if (!Number.isInteger(instances) || instances < 1 || instances > 64) {
    throw new TypeError(`${key}: device instances must be an integer in 1..64, got ${instances}`);
  }
  if (!(Number.isFinite(callCostMs) && callCostMs >= 0)) {
    throw new TypeError(`${key}: device callCostMs must be a number ≥ 0, got ${callCostMs}`);
  }
  // Free instances, lowest first, and the calls waiting for one, oldest first.
  const free = Array.from({ length: instances }, (_, i) => i);
  const waiting: Array<(instance: number) => void> = [];
  let events = 0;
  let busy = 0;
  let counters = { calls: 0, busyMs: 0, maxBusy: 0, maxQueued: 0 };

  const take = (): Promise<number> | number => {
    const instance = free.shift();
    if (instance !== undefined) return instance;
    if (waiting.length >= maxQueue) {
      throw new PoolOverloadedError(
        `all ${instances} instances of ${key} are busy and ${waiting.length} calls wait`,
      );
    }
    return new Promise<number>((resolve) => {
      waiting.push(resolve);
      counters.maxQueued = Math.max(counters.maxQueued, waiting.length);
    });
  };
  const giveBack = (instance: number): void => {
    const next = waiting.shift();
    if (next !== undefined) next(instance);
    else {
      free.push(instance);
      free.sort((a, b) => a - b);
    }
  };

  return {
    settings: { instances, callCostMs },
    async run(work, onExecuted) {
      const instance = await take();
      const began = ++events;
      busy += 1;
      counters.maxBusy = Math.max(counters.maxBusy, busy);
      const start = now();
      try {
        // Really wait the cost out: a timer may fire up to a millisecond early.
        for (let left = callCostMs; left > 0; left = callCostMs - (now() - start)) {
          await sleep(left);
        }
        return await work();
      } finally {
        counters.calls += 1;
        counters.busyMs += now() - start;
        busy -= 1;
        const ended = ++events;
        giveBack(instance);
        onExecuted({ instance, began, ended });
      }
    },
    counters() {
      return {
        instances,
        callCostMs,
        ...counters,
        busyMs: Math.round(counters.busyMs * 10) / 10,
        busy,
        queued: waiting.length,
      };
    },
    reset() {
      counters = { calls: 0, busyMs: 0, maxBusy: busy, maxQueued: waiting.length };
    },
  };
}
