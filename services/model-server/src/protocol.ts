import type { ServedModel } from './repository.js';
import type { PoolTensor } from './worker-pool.js';

/**
 * The Open Inference Protocol v2 (KServe v2 / Triton HTTP) JSON shapes: validation of infer
 * requests against a model's declared tensors, and the response and metadata bodies.
 */

/** An error answered as `{"error": message}` with an HTTP status. */
export class ModelServerError extends Error {
  override readonly name = 'ModelServerError';
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
  }
}

/** Tensor datatypes the protocol defines (a request naming another is malformed). */
export const OIP_DATATYPES = new Set([
  'BOOL',
  'UINT8',
  'UINT16',
  'UINT32',
  'UINT64',
  'INT8',
  'INT16',
  'INT32',
  'INT64',
  'FP16',
  'FP32',
  'FP64',
  'BYTES',
]);

const FP32_MAX = 3.4028234663852886e38;

/** A validated infer request, ready for the pool. */
export interface InferRequest {
  id: string | undefined;
  /** One tensor per model input, in the model's declared order. */
  inputs: PoolTensor[];
  /** Requested output names (all the model's outputs when the request names none). */
  outputs: string[];
  /** The batch size (first dimension). */
  rows: number;
}

const bad = (message: string): ModelServerError => new ModelServerError(400, message);
const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const describe = (v: unknown): string =>
  v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;

/**
 * Validates a parsed JSON body against `model`'s inputs and outputs; throws a 400 on any mismatch.
 * `binary` is what followed the JSON header of a binary-tensor request (the KServe/Triton binary
 * data extension): the inputs that name `parameters.binary_data_size` take their raw
 * little-endian bytes from it, in the order they are listed, and it must be used up exactly.
 */
export function parseInferRequest(
  body: unknown,
  model: ServedModel,
  binary?: Buffer,
): InferRequest {
  let offset = 0;
  if (!isObject(body)) throw bad(`request body must be a JSON object, got ${describe(body)}`);
  const { id, inputs, outputs, parameters } = body;
  if (id !== undefined && typeof id !== 'string')
    throw bad(`"id" must be a string, got ${describe(id)}`);
  if (parameters !== undefined && !isObject(parameters)) {
    throw bad(`"parameters" must be an object, got ${describe(parameters)}`);
  }
  if (isObject(parameters) && parameters.binary_data_output === true) {
    throw bad('binary output data is not supported; outputs are JSON');
  }
  if (!Array.isArray(inputs) || inputs.length === 0)
    throw bad('"inputs" must be a non-empty array');

  const byName = new Map<string, PoolTensor>();
  let rows: number | undefined;
  inputs.forEach((raw: unknown, index) => {
    const where = `inputs[${index}]`;
    if (!isObject(raw)) throw bad(`${where} must be an object, got ${describe(raw)}`);
    const { name, datatype, shape, data } = raw;
    if (typeof name !== 'string' || name === '')
      throw bad(`${where}.name must be a non-empty string`);
    const spec = model.inputs.find((t) => t.name === name);
    if (spec === undefined) {
      throw bad(
        `unknown input "${name}" for model ${model.name}; expected ${model.inputs.map((t) => `"${t.name}"`).join(', ')}`,
      );
    }
    if (byName.has(name)) throw bad(`input "${name}" is given twice`);
    const binarySize = isObject(raw.parameters) ? raw.parameters.binary_data_size : undefined;
    if (typeof datatype !== 'string') throw bad(`input "${name}": "datatype" must be a string`);
    if (!OIP_DATATYPES.has(datatype)) throw bad(`input "${name}": unknown datatype "${datatype}"`);
    if (datatype !== spec.datatype) {
      throw bad(
        `input "${name}": datatype ${datatype} does not match the model's ${spec.datatype}`,
      );
    }
    if (
      !Array.isArray(shape) ||
      !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)
    ) {
      throw bad(`input "${name}": "shape" must be an array of non-negative integers`);
    }
    const dims = shape as number[];
    if (
      dims.length !== spec.dims.length ||
      dims.some((d, i) => spec.dims[i] !== -1 && spec.dims[i] !== d)
    ) {
      throw bad(
        `input "${name}": shape [${dims.join(', ')}] does not match the model's [${spec.dims.join(', ')}]`,
      );
    }
    const batch = dims[0]!;
    if (batch < 1) throw bad(`input "${name}": the batch dimension must be at least 1`);
    if (model.maxBatchRows > 0 && batch > model.maxBatchRows) {
      throw bad(
        `input "${name}": batch of ${batch} rows exceeds the model's limit of ${model.maxBatchRows}`,
      );
    }
    if (rows !== undefined && rows !== batch)
      throw bad(`inputs disagree on the batch size (${rows} vs ${batch})`);
    rows = batch;
    if (binarySize !== undefined) {
      if (data !== undefined) throw bad(`input "${name}": both "data" and binary_data_size`);
      const tensor = binaryFloat32(name, binarySize, dims, binary, offset);
      offset += tensor.byteLength;
      byName.set(name, { name, dims: [...dims], data: tensor });
      return;
    }
    if (data === undefined) throw bad(`input "${name}": "data" is missing`);
    byName.set(name, { name, dims: [...dims], data: toFloat32(name, data, dims) });
  });
  if (binary !== undefined && offset !== binary.length) {
    throw bad(
      `the binary tensor data holds ${binary.length} bytes; the inputs' binary_data_size add up to ${offset}`,
    );
  }

  const missing = model.inputs.filter((t) => !byName.has(t.name)).map((t) => `"${t.name}"`);
  if (missing.length > 0) throw bad(`missing input ${missing.join(', ')} for model ${model.name}`);

  let requested = model.outputs.map((t) => t.name);
  if (outputs !== undefined) {
    if (!Array.isArray(outputs)) throw bad(`"outputs" must be an array, got ${describe(outputs)}`);
    if (outputs.length > 0) {
      requested = outputs.map((raw: unknown, index) => {
        if (!isObject(raw) || typeof raw.name !== 'string')
          throw bad(`outputs[${index}].name must be a string`);
        const name = raw.name;
        if (isObject(raw.parameters) && raw.parameters.binary_data === true) {
          throw bad(`output "${name}": binary output data is not supported; outputs are JSON`);
        }
        if (!model.outputs.some((t) => t.name === name)) {
          throw bad(
            `unknown output "${name}" for model ${model.name}; expected ${model.outputs.map((t) => `"${t.name}"`).join(', ')}`,
          );
        }
        return name;
      });
      const dup = requested.find((n, i) => requested.indexOf(n) !== i);
      if (dup !== undefined) throw bad(`output "${dup}" is requested twice`);
    }
  }

  return {
    id,
    inputs: model.inputs.map((t) => byName.get(t.name)!),
    outputs: requested,
    rows: rows!,
  };
}

/**
 * Accepts the row-major flat form (`[1, 2, 3, 4]`) or the nested form matching the shape
 * exactly (`[[1, 2], [3, 4]]`); anything in between is ambiguous and refused.
 */
/** An FP32 input's raw little-endian bytes from the binary part, checked against its shape. */
function binaryFloat32(
  name: string,
  size: unknown,
  dims: readonly number[],
  binary: Buffer | undefined,
  offset: number,
): Float32Array {
  if (binary === undefined) {
    throw bad(
      `input "${name}": binary_data_size without binary data (send the Inference-Header-Content-Length header)`,
    );
  }
  const count = dims.reduce((a, b) => a * b, 1);
  if (size !== count * 4) {
    throw bad(
      `input "${name}": binary_data_size ${String(size)}; shape [${dims.join(', ')}] of FP32 needs ${count * 4} bytes`,
    );
  }
  if (offset + count * 4 > binary.length) {
    throw bad(
      `input "${name}": the binary tensor data ends before this input's ${count * 4} bytes`,
    );
  }
  const values = new Float32Array(count);
  for (let i = 0; i < count; i += 1) {
    const v = binary.readFloatLE(offset + i * 4);
    if (!Number.isFinite(v)) throw bad(`input "${name}": element ${i} is not a finite number`);
    values[i] = v;
  }
  return values;
}

function toFloat32(name: string, data: unknown, dims: readonly number[]): Float32Array {
  if (!Array.isArray(data))
    throw bad(`input "${name}": "data" must be an array, got ${describe(data)}`);
  const count = dims.reduce((a, b) => a * b, 1);
  const out = new Float32Array(count);
  let n = 0;
  const put = (v: unknown): void => {
    if (typeof v !== 'number' || !Number.isFinite(v) || Math.abs(v) > FP32_MAX) {
      throw bad(
        `input "${name}": element ${n} is ${JSON.stringify(v) ?? describe(v)}, not a finite FP32 number`,
      );
    }
    out[n++] = v;
  };
  const flat = data.every((v) => !Array.isArray(v));
  if (flat) {
    if (data.length !== count) {
      throw bad(
        `input "${name}": "data" has ${data.length} elements; shape [${dims.join(', ')}] needs ${count}`,
      );
    }
    for (const v of data) put(v);
    return out;
  }
  const walk = (node: unknown, depth: number, path: string): void => {
    const expected = dims[depth]!;
    if (!Array.isArray(node) || node.length !== expected) {
      throw bad(
        `input "${name}": nested "data"${path} must be an array of ${expected} elements to match shape [${dims.join(', ')}]`,
      );
    }
    if (depth === dims.length - 1) for (const v of node) put(v);
    else node.forEach((child, i) => walk(child, depth + 1, `${path}[${i}]`));
  };
  walk(data, 0, '');
  return out;
}

/** Body of a successful infer response. */
export function inferResponseBody(
  model: ServedModel,
  version: string,
  id: string | undefined,
  outputs: readonly PoolTensor[],
): Record<string, unknown> {
  const byName = new Map(model.outputs.map((t) => [t.name, t]));
  return {
    model_name: model.name,
    model_version: version,
    ...(id !== undefined ? { id } : {}),
    outputs: outputs.map((o) => ({
      name: o.name,
      datatype: byName.get(o.name)?.datatype ?? 'FP32',
      shape: o.dims,
      data: Array.from(o.data),
    })),
  };
}

/** Body of a model metadata response. */
export function modelMetadataBody(model: ServedModel): Record<string, unknown> {
  const tensor = (t: {
    name: string;
    datatype: string;
    dims: readonly number[];
  }): Record<string, unknown> => ({
    name: t.name,
    datatype: t.datatype,
    shape: [...t.dims],
  });
  return {
    name: model.name,
    versions: [...model.versions],
    platform: model.platform,
    inputs: model.inputs.map(tensor),
    outputs: model.outputs.map(tensor),
  };
}
