import { ProtoWriter } from './proto-writer.js';

/**
 * Serialises a small inference graph as an ONNX ModelProto. Field numbers follow
 * onnx/onnx.proto (ModelProto, GraphProto, NodeProto, TensorProto, ValueInfoProto, TypeProto,
 * TensorShapeProto, OperatorSetIdProto, StringStringEntryProto); only FP32 tensors and
 * attribute-free operators are supported because that is all the trained models use.
 */

/** ONNX IR version 7 is the one that pairs with opset 13 (onnx 1.8). */
export const ONNX_IR_VERSION = 7;
/** Default ai.onnx opset: MatMul, Add, Sub, Div, Relu and Sigmoid are all stable in 13. */
export const ONNX_OPSET_VERSION = 13;

const TENSOR_FLOAT = 1;

/** A constant FP32 tensor stored in the graph (weights, biases, normalisation constants). */
export interface OnnxInitializer {
  name: string;
  dims: readonly number[];
  data: Float32Array;
}

/** One operator application. Attribute-free ops only (MatMul, Add, Sub, Div, Relu, Sigmoid…). */
export interface OnnxNode {
  opType: string;
  inputs: readonly string[];
  outputs: readonly string[];
  name?: string;
}

/** A graph input or output: FP32 tensor; a string dimension is symbolic (e.g. the batch). */
export interface OnnxValueInfo {
  name: string;
  shape: ReadonlyArray<number | string>;
}

/** The graph and model-level metadata to serialise. */
export interface OnnxModel {
  graphName: string;
  nodes: readonly OnnxNode[];
  initializers: readonly OnnxInitializer[];
  inputs: readonly OnnxValueInfo[];
  outputs: readonly OnnxValueInfo[];
  producerName: string;
  producerVersion: string;
  modelVersion: number;
  docString?: string;
  /** Free-form key/value metadata (ModelProto.metadata_props). */
  metadata?: Readonly<Record<string, string>>;
  opsetVersion?: number;
}

/** Encodes `model` as the bytes of a `.onnx` file. */
export function encodeOnnxModel(model: OnnxModel): Uint8Array {
  const graph = new ProtoWriter();
  for (const node of model.nodes) graph.message(1, encodeNode(node));
  graph.string(2, model.graphName);
  for (const init of model.initializers) graph.message(5, encodeInitializer(init));
  for (const input of model.inputs) graph.message(11, encodeValueInfo(input));
  for (const output of model.outputs) graph.message(12, encodeValueInfo(output));

  const out = new ProtoWriter()
    .varint(1, ONNX_IR_VERSION)
    .string(2, model.producerName)
    .string(3, model.producerVersion)
    .varint(5, model.modelVersion);
  if (model.docString !== undefined) out.string(6, model.docString);
  out.message(7, graph);
  out.message(
    8,
    new ProtoWriter().string(1, '').varint(2, model.opsetVersion ?? ONNX_OPSET_VERSION),
  );
  for (const [key, value] of Object.entries(model.metadata ?? {})) {
    out.message(14, new ProtoWriter().string(1, key).string(2, value));
  }
  return out.finish();
}

function encodeNode(node: OnnxNode): ProtoWriter {
  const w = new ProtoWriter();
  for (const input of node.inputs) w.string(1, input);
  for (const output of node.outputs) w.string(2, output);
  if (node.name !== undefined) w.string(3, node.name);
  w.string(4, node.opType);
  return w;
}

function encodeInitializer(init: OnnxInitializer): ProtoWriter {
  const expected = init.dims.reduce((a, b) => a * b, 1);
  if (expected !== init.data.length) {
    throw new RangeError(
      `initializer ${init.name}: dims [${init.dims.join(', ')}] need ${expected} values, got ${init.data.length}`,
    );
  }
  // raw_data must be little-endian IEEE 754 whatever the host's byte order.
  const raw = new Uint8Array(init.data.length * 4);
  const view = new DataView(raw.buffer);
  init.data.forEach((v, i) => view.setFloat32(i * 4, v, true));
  return new ProtoWriter()
    .packedVarints(1, init.dims)
    .varint(2, TENSOR_FLOAT)
    .string(8, init.name)
    .bytes(9, raw);
}

function encodeValueInfo(info: OnnxValueInfo): ProtoWriter {
  const shape = new ProtoWriter();
  for (const dim of info.shape) {
    const d = new ProtoWriter();
    if (typeof dim === 'string') d.string(2, dim);
    else d.varint(1, dim);
    shape.message(1, d);
  }
  const tensorType = new ProtoWriter().varint(1, TENSOR_FLOAT).message(2, shape);
  const type = new ProtoWriter().message(1, tensorType);
  return new ProtoWriter().string(1, info.name).message(2, type);
}
