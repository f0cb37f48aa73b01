/**
 * Inference worker: loads every servable model version into an onnxruntime session once, then
 * runs requests posted by the pool. `session.run` does its work synchronously on the calling
 * thread's behalf, which is why it lives here and not on the HTTP event loop.
 */
import { parentPort, workerData } from 'node:worker_threads';
import ort from 'onnxruntime-node';
import type {
  GraphTensor,
  RunMessage,
  WireTensor,
  WorkerInit,
  WorkerMessage,
} from './worker-protocol.js';

const port = parentPort;
if (port === null) throw new Error('infer-worker.ts must run in a worker thread');
const init = workerData as WorkerInit;
const post = (message: WorkerMessage, transfer: ArrayBuffer[] = []): void =>
  port.postMessage(message, transfer);

const sessions = new Map<string, ort.InferenceSession>();
try {
  for (const { key, file } of init.models) {
    sessions.set(
      key,
      await ort.InferenceSession.create(file, {
        intraOpNumThreads: init.intraOpThreads,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        graphOptimizationLevel: 'all',
      }),
    );
  }
  post({
    type: 'ready',
    models: [...sessions].map(([key, s]) => ({
      key,
      signature: {
        inputs: s.inputMetadata.map(graphTensor),
        outputs: s.outputMetadata.map(graphTensor),
      },
    })),
  });
} catch (err) {
  post({ type: 'load-error', message: err instanceof Error ? err.message : String(err) });
}

function graphTensor(meta: ort.InferenceSession.ValueMetadata): GraphTensor {
  return meta.isTensor
    ? { name: meta.name, type: meta.type, shape: [...meta.shape] }
    : { name: meta.name, type: undefined, shape: [] };
}

port.on('message', (message: RunMessage) => {
  void run(message);
});

async function run(message: RunMessage): Promise<void> {
  try {
    const session = sessions.get(message.key);
    if (session === undefined) throw new Error(`model ${message.key} is not loaded in this worker`);
    const feeds: Record<string, ort.Tensor> = {};
    for (const input of message.inputs)
      feeds[input.name] = new ort.Tensor('float32', input.data, input.dims);
    const results = await session.run(feeds, message.outputs);
    const outputs: WireTensor[] = [];
    for (const name of message.outputs) {
      const tensor = results[name];
      if (tensor === undefined)
        throw new Error(`model ${message.key} produced no output "${name}"`);
      if (tensor.type !== 'float32')
        throw new Error(`output "${name}" is ${tensor.type}, expected float32`);
      // Copy so the transferred buffer is ours alone, whatever onnxruntime keeps a view of.
      outputs.push({
        name,
        dims: tensor.dims.map(Number),
        data: (tensor.data as Float32Array).slice(),
      });
    }
    post(
      { type: 'result', id: message.id, outputs },
      outputs.map((o) => o.data.buffer as ArrayBuffer),
    );
  } catch (err) {
    post({
      type: 'error',
      id: message.id,
      message: err instanceof Error ? err.message : String(err),
    });
  }
}
