import { encodeOnnxModel, type OnnxInitializer, type OnnxNode } from '../onnx/encode-model.js';
import type { Standardizer, TrainedModel } from './train.js';

/** Names and provenance to put in the ONNX file. */
export interface ToOnnxOptions {
  inputName: string;
  outputName: string;
  modelName: string;
  modelVersion: number;
  docString: string;
  metadata?: Readonly<Record<string, string>>;
}

/**
 * Builds the serving graph: raw features → Sub(mean) → Div(std) → the trained layers →
 * Sigmoid, so the server (and the gateway) send raw feature values and the standardisation
 * fitted at training time travels with the model.
 */
export function trainedModelToOnnx(
  model: TrainedModel,
  standardizer: Standardizer,
  options: ToOnnxOptions,
): Uint8Array {
  const cols = standardizer.mean.length;
  const f32 = (values: ArrayLike<number>): Float32Array => Float32Array.from(values);
  const initializers: OnnxInitializer[] = [
    { name: 'feature_mean', dims: [cols], data: f32(standardizer.mean) },
    { name: 'feature_std', dims: [cols], data: f32(standardizer.std) },
  ];
  const nodes: OnnxNode[] = [
    {
      name: 'center',
      opType: 'Sub',
      inputs: [options.inputName, 'feature_mean'],
      outputs: ['centered'],
    },
    {
      name: 'scale',
      opType: 'Div',
      inputs: ['centered', 'feature_std'],
      outputs: ['standardized'],
    },
  ];
  if (model.kind === 'logistic') {
    initializers.push(
      { name: 'weights', dims: [cols, 1], data: f32(model.weights) },
      { name: 'bias', dims: [1], data: f32([model.bias]) },
    );
    nodes.push(
      {
        name: 'linear',
        opType: 'MatMul',
        inputs: ['standardized', 'weights'],
        outputs: ['linear'],
      },
      { name: 'logit', opType: 'Add', inputs: ['linear', 'bias'], outputs: ['logit'] },
    );
  } else {
    initializers.push(
      { name: 'hidden_weights', dims: [cols, model.hidden], data: f32(model.w1) },
      { name: 'hidden_bias', dims: [model.hidden], data: f32(model.b1) },
      { name: 'output_weights', dims: [model.hidden, 1], data: f32(model.w2) },
      { name: 'output_bias', dims: [1], data: f32([model.b2]) },
    );
    nodes.push(
      {
        name: 'hidden_linear',
        opType: 'MatMul',
        inputs: ['standardized', 'hidden_weights'],
        outputs: ['h1'],
      },
      { name: 'hidden_bias_add', opType: 'Add', inputs: ['h1', 'hidden_bias'], outputs: ['h2'] },
      { name: 'hidden_relu', opType: 'Relu', inputs: ['h2'], outputs: ['hidden'] },
      {
        name: 'output_linear',
        opType: 'MatMul',
        inputs: ['hidden', 'output_weights'],
        outputs: ['o1'],
      },
      { name: 'logit', opType: 'Add', inputs: ['o1', 'output_bias'], outputs: ['logit'] },
    );
  }
  nodes.push({
    name: 'probability',
    opType: 'Sigmoid',
    inputs: ['logit'],
    outputs: [options.outputName],
  });

  return encodeOnnxModel({
    graphName: `${options.modelName}_v${options.modelVersion}`,
    nodes,
    initializers,
    inputs: [{ name: options.inputName, shape: ['batch', cols] }],
    outputs: [{ name: options.outputName, shape: ['batch', 1] }],
    producerName: 'atrium-model-server',
    producerVersion: '0.1.0',
    modelVersion: options.modelVersion,
    docString: options.docString,
    ...(options.metadata ? { metadata: options.metadata } : {}),
  });
}
