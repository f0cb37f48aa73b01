/** Messages between the inference pool (main thread) and its workers. */

/** A tensor crossing the thread boundary; `data` is transferred, not copied. */
export interface WireTensor {
  name: string;
  dims: number[];
  data: Float32Array;
}

/**
 * A tensor as the ONNX graph declares it: onnxruntime's element type (`float32`, …; undefined
 * for a non-tensor value) and shape, a string for a symbolic dimension (`[]` when unknown).
 */
export interface GraphTensor {
  name: string;
  type: string | undefined;
  shape: Array<number | string>;
}

/** What a loaded model version declares. */
export interface GraphSignature {
  inputs: GraphTensor[];
  outputs: GraphTensor[];
}

/** `workerData` of each inference worker. */
export interface WorkerInit {
  models: ReadonlyArray<{ key: string; file: string }>;
  /** onnxruntime intra-op threads per session; 1 keeps N workers from oversubscribing N cores. */
  intraOpThreads: number;
}

export interface RunMessage {
  type: 'run';
  id: number;
  key: string;
  inputs: WireTensor[];
  outputs: string[];
}

export type WorkerMessage =
  | { type: 'ready'; models: Array<{ key: string; signature: GraphSignature }> }
  | { type: 'load-error'; message: string }
  | { type: 'result'; id: number; outputs: WireTensor[] }
  | { type: 'error'; id: number; message: string };
