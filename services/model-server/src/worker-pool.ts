import { Worker } from 'node:worker_threads';
import type {
  GraphSignature,
  RunMessage,
  WireTensor,
  WorkerInit,
  WorkerMessage,
} from './worker-protocol.js';

/** Default number of inference worker threads. */
export const DEFAULT_POOL_SIZE = 2;
/** Default number of requests that may wait for a free worker before new ones are refused. */
export const DEFAULT_MAX_QUEUE = 256;
/** Default time allowed for a worker to load every model. */
export const DEFAULT_WORKER_START_TIMEOUT_MS = 30_000;
/** Default time a caller waits for one inference before it is failed. */
export const DEFAULT_RUN_TIMEOUT_MS = 30_000;

/** Options of {@link createInferencePool}. */
export interface InferencePoolOptions {
  /** Model versions every worker loads: `key` (e.g. `mymodel/2`) → path of the .onnx file. */
  models: ReadonlyArray<{ key: string; file: string }>;
  /** Worker threads, 1..64. */
  size?: number;
  /** Requests allowed to wait when every worker is busy; beyond it `run` rejects at once. */
  maxQueue?: number;
  /** onnxruntime intra-op threads per session (default 1). */
  intraOpThreads?: number;
  startTimeoutMs?: number;
  /**
   * A run taking longer is failed for its caller, so a slow worker cannot hang requests. The
   * worker keeps its slot until onnxruntime returns: terminating a thread inside a native
   * `session.run` aborts the whole process.
   */
  runTimeoutMs?: number;
}

/** A tensor handed to or returned by the pool (float32 only: the repository's only type). */
export type PoolTensor = WireTensor;

/** Runs ONNX models on a fixed set of worker threads with a bounded wait queue. */
export interface InferencePool {
  /**
   * Runs `key` on `inputs` and returns `outputs` in that order. The inputs' buffers are
   * transferred to the worker and unusable afterwards.
   * Rejects with {@link PoolOverloadedError} when the queue is full, {@link PoolClosedError}
   * after `close()`, {@link InferenceRunError} when onnxruntime fails.
   */
  run(key: string, inputs: PoolTensor[], outputs: string[]): Promise<PoolTensor[]>;
  /** The inputs and outputs each loaded model declares (from the onnxruntime session). */
  readonly signatures: ReadonlyMap<string, GraphSignature>;
  /** Busy workers and waiting requests, for diagnostics. */
  load(): { workers: number; busy: number; queued: number };
  /**
   * Rejects waiting requests, waits (up to `drainTimeoutMs`, default the run timeout) for
   * running ones, then terminates the workers.
   */
  close(drainTimeoutMs?: number): Promise<void>;
}

/** Every worker is busy and the wait queue is full. */
export class PoolOverloadedError extends Error {
  override readonly name = 'PoolOverloadedError';
}
/** The pool was closed. */
export class PoolClosedError extends Error {
  override readonly name = 'PoolClosedError';
}
/** onnxruntime (or the worker running it) failed on a request. */
export class InferenceRunError extends Error {
  override readonly name = 'InferenceRunError';
}

interface Job {
  key: string;
  inputs: PoolTensor[];
  outputs: string[];
  resolve: (outputs: PoolTensor[]) => void;
  reject: (err: Error) => void;
}

interface Slot {
  worker: Worker;
  job: { id: number; job: Job; timer: NodeJS.Timeout } | undefined;
  ready: boolean;
}

const WORKER_URL = new URL(
  import.meta.url.endsWith('.ts') ? './infer-worker.ts' : './infer-worker.js',
  import.meta.url,
);

/**
 * tsx registers its loader on the main thread only, so a worker started from a `.ts` file
 * would not understand TypeScript. When running from source, the worker is started from a tiny
 * bootstrap that registers tsx's ESM loader in the worker itself and then imports the real
 * worker module.
 */
function spawnWorker(init: WorkerInit): Worker {
  if (!WORKER_URL.pathname.endsWith('.ts')) return new Worker(WORKER_URL, { workerData: init });
  const tsxApi = import.meta.resolve('tsx/esm/api');
  const bootstrap =
    `import(${JSON.stringify(tsxApi)})` +
    `.then((tsx) => { tsx.register(); return import(${JSON.stringify(WORKER_URL.href)}); });`;
  return new Worker(bootstrap, { eval: true, workerData: init });
}

/**
 * Starts `size` workers, each loading every model, and resolves once all are ready (rejects
 * with the load error otherwise). A worker that dies later fails its current request and is
 * replaced.
 */
export async function createInferencePool(options: InferencePoolOptions): Promise<InferencePool> {
  const size = options.size ?? DEFAULT_POOL_SIZE;
  const maxQueue = options.maxQueue ?? DEFAULT_MAX_QUEUE;
  const intraOpThreads = options.intraOpThreads ?? 1;
  const startTimeoutMs = options.startTimeoutMs ?? DEFAULT_WORKER_START_TIMEOUT_MS;
  const runTimeoutMs = options.runTimeoutMs ?? DEFAULT_RUN_TIMEOUT_MS;
  if (!Number.isInteger(size) || size < 1 || size > 64) {
    throw new TypeError(
      `InferencePoolOptions.size must be an integer in 1..64, got ${String(size)}`,
    );
  }
  if (!Number.isInteger(maxQueue) || maxQueue < 0) {
    throw new TypeError(
      `InferencePoolOptions.maxQueue must be a non-negative integer, got ${String(maxQueue)}`,
    );
  }
  if (!Number.isInteger(intraOpThreads) || intraOpThreads < 1) {
    throw new TypeError(
      `InferencePoolOptions.intraOpThreads must be a positive integer, got ${String(intraOpThreads)}`,
    );
  }
  if (!Number.isInteger(runTimeoutMs) || runTimeoutMs < 1) {
    throw new TypeError(
      `InferencePoolOptions.runTimeoutMs must be a positive integer, got ${String(runTimeoutMs)}`,
    );
  }
  if (options.models.length === 0)
    throw new TypeError('InferencePoolOptions.models must not be empty');

  const init: WorkerInit = { models: options.models, intraOpThreads };
  const slots: Slot[] = [];
  const queue: Job[] = [];
  const signatures = new Map<string, GraphSignature>();
  let nextId = 1;
  let closed = false;
  // Replacement workers still loading; while > 0 an empty pool may still recover.
  let starting = 0;

  const dispatch = (): void => {
    for (const slot of slots) {
      if (queue.length === 0) return;
      if (!slot.ready || slot.job !== undefined) continue;
      const job = queue.shift()!;
      const id = nextId++;
      // The slot stays busy until the worker answers; the late answer is then dropped
      // (settling an already-rejected promise is a no-op).
      const timer = setTimeout(() => {
        job.reject(new InferenceRunError(`inference did not finish within ${runTimeoutMs} ms`));
      }, runTimeoutMs);
      slot.job = { id, job, timer };
      const message: RunMessage = {
        type: 'run',
        id,
        key: job.key,
        inputs: job.inputs,
        outputs: job.outputs,
      };
      slot.worker.postMessage(
        message,
        job.inputs.map((t) => t.data.buffer as ArrayBuffer),
      );
    }
  };

  const startWorker = (): Promise<Slot> =>
    new Promise<Slot>((resolve, reject) => {
      const worker = spawnWorker(init);
      const slot: Slot = { worker, job: undefined, ready: false };
      const timer = setTimeout(() => {
        void worker.terminate();
        reject(
          new InferenceRunError(
            `inference worker did not load its models within ${startTimeoutMs} ms`,
          ),
        );
      }, startTimeoutMs);
      worker.on('message', (message: WorkerMessage) => {
        switch (message.type) {
          case 'ready':
            clearTimeout(timer);
            for (const m of message.models) {
              signatures.set(m.key, m.signature);
            }
            slot.ready = true;
            resolve(slot);
            dispatch();
            return;
          case 'load-error':
            clearTimeout(timer);
            void worker.terminate();
            reject(
              new InferenceRunError(`inference worker failed to load models: ${message.message}`),
            );
            return;
          case 'result':
          case 'error': {
            const current = slot.job;
            if (current === undefined || current.id !== message.id) return;
            clearTimeout(current.timer);
            slot.job = undefined;
            if (message.type === 'result') current.job.resolve(message.outputs);
            else current.job.reject(new InferenceRunError(message.message));
            dispatch();
            return;
          }
          default: {
            const unreachable: never = message;
            throw new Error(`unexpected worker message ${JSON.stringify(unreachable)}`);
          }
        }
      });
      let dead = false;
      const onDeath = (reason: string): void => {
        // 'error' is followed by 'exit'; handle the first only.
        if (dead) return;
        dead = true;
        clearTimeout(timer);
        const index = slots.indexOf(slot);
        if (index >= 0) slots.splice(index, 1);
        if (slot.job !== undefined) {
          clearTimeout(slot.job.timer);
          slot.job.job.reject(new InferenceRunError(`inference worker stopped: ${reason}`));
          slot.job = undefined;
        }
        if (!slot.ready) {
          reject(new InferenceRunError(`inference worker stopped while loading: ${reason}`));
          return;
        }
        if (closed) return;
        // Replace it so one crash does not shrink the pool for good.
        starting += 1;
        startWorker().then(
          (replacement) => {
            starting -= 1;
            if (closed) void replacement.worker.terminate();
            else slots.push(replacement);
            dispatch();
          },
          () => {
            starting -= 1;
            if (slots.length === 0 && starting === 0) {
              for (const job of queue.splice(0)) job.reject(new InferenceRunError(reason));
            }
          },
        );
      };
      worker.on('error', (err) => onDeath(err.message));
      worker.on('exit', (code) => onDeath(`exit code ${code}`));
    });

  const started = await Promise.allSettled(Array.from({ length: size }, () => startWorker()));
  for (const r of started) if (r.status === 'fulfilled') slots.push(r.value);
  const failure = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failure !== undefined) {
    closed = true;
    await Promise.all(slots.map((s) => s.worker.terminate()));
    throw failure.reason;
  }

  return {
    signatures,
    run(key, inputs, outputs) {
      if (closed) return Promise.reject(new PoolClosedError('inference pool is closed'));
      if (slots.length === 0 && starting === 0) {
        return Promise.reject(new InferenceRunError('no inference worker is running'));
      }
      const idle = slots.some((s) => s.ready && s.job === undefined);
      if (!idle && queue.length >= maxQueue) {
        return Promise.reject(
          new PoolOverloadedError(
            `all ${slots.length} inference workers are busy and ${queue.length} requests wait`,
          ),
        );
      }
      return new Promise<PoolTensor[]>((resolve, reject) => {
        queue.push({ key, inputs, outputs, resolve, reject });
        dispatch();
      });
    },
    load() {
      return {
        workers: slots.length,
        busy: slots.filter((s) => s.job !== undefined).length,
        queued: queue.length,
      };
    },
    async close(drainTimeoutMs = runTimeoutMs) {
      if (closed) return;
      closed = true;
      for (const job of queue.splice(0))
        job.reject(new PoolClosedError('inference pool is closed'));
      // Terminating a worker inside a native session.run aborts the process: let runs finish.
      const deadline = Date.now() + drainTimeoutMs;
      while (slots.some((s) => s.job !== undefined) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      await Promise.all(slots.map((s) => s.worker.terminate()));
    },
  };
}
