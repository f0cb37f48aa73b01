import type { Dataset } from './dataset.js';
import type { Random } from './random.js';

/**
 * Plain full-batch gradient descent (with heavy-ball momentum) on binary cross-entropy, in
 * float64. The models are tiny (5 inputs), so a few hundred epochs over a few thousand rows
 * take well under a second and need no ML library.
 */

/** Per-column mean and standard deviation of the training features. */
export interface Standardizer {
  mean: Float64Array;
  std: Float64Array;
}

/** Logistic regression on standardised features. */
export interface LogisticModel {
  kind: 'logistic';
  weights: Float64Array;
  bias: number;
}

/** One hidden ReLU layer, sigmoid output, on standardised features. */
export interface MlpModel {
  kind: 'mlp';
  hidden: number;
  /** inputs × hidden, row-major (the layout of ONNX MatMul's right operand). */
  w1: Float64Array;
  b1: Float64Array;
  /** hidden × 1. */
  w2: Float64Array;
  b2: number;
}

export type TrainedModel = LogisticModel | MlpModel;

/** Gradient-descent settings shared by both trainers. */
export interface GradientDescentOptions {
  epochs: number;
  learningRate: number;
  /** L2 penalty on weights (not biases). */
  l2: number;
  /** Heavy-ball momentum in [0, 1). */
  momentum: number;
}

/** Settings for {@link trainMlp}. */
export interface MlpOptions extends GradientDescentOptions {
  hidden: number;
  /** Seeds the He initialisation of the hidden layer. */
  random: Random;
}

/** Fits per-column mean/std; a constant column gets std 1 so the division stays finite. */
export function fitStandardizer(data: Dataset): Standardizer {
  const { rows, cols, x } = data;
  const mean = new Float64Array(cols);
  const std = new Float64Array(cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) mean[j]! += x[i * cols + j]! / rows;
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) std[j]! += (x[i * cols + j]! - mean[j]!) ** 2 / rows;
  }
  for (let j = 0; j < cols; j++) std[j] = std[j]! > 1e-12 ? Math.sqrt(std[j]!) : 1;
  return { mean, std };
}

/** Returns a standardised copy of the features. */
export function standardize(data: Dataset, s: Standardizer): Float64Array {
  const out = new Float64Array(data.x.length);
  for (let i = 0; i < data.rows; i++) {
    for (let j = 0; j < data.cols; j++) {
      const k = i * data.cols + j;
      out[k] = (data.x[k]! - s.mean[j]!) / s.std[j]!;
    }
  }
  return out;
}

const sigmoid = (z: number): number => 1 / (1 + Math.exp(-z));

/** Trains logistic regression on standardised features `xs` (rows × cols). */
export function trainLogistic(
  xs: Float64Array,
  y: Uint8Array,
  cols: number,
  options: GradientDescentOptions,
): LogisticModel {
  const rows = y.length;
  const w = new Float64Array(cols);
  let b = 0;
  const vw = new Float64Array(cols);
  let vb = 0;
  const gw = new Float64Array(cols);
  for (let epoch = 0; epoch < options.epochs; epoch++) {
    gw.fill(0);
    let gb = 0;
    for (let i = 0; i < rows; i++) {
      let z = b;
      for (let j = 0; j < cols; j++) z += w[j]! * xs[i * cols + j]!;
      const d = (sigmoid(z) - y[i]!) / rows;
      for (let j = 0; j < cols; j++) gw[j]! += d * xs[i * cols + j]!;
      gb += d;
    }
    for (let j = 0; j < cols; j++) {
      vw[j] = options.momentum * vw[j]! - options.learningRate * (gw[j]! + options.l2 * w[j]!);
      w[j]! += vw[j]!;
    }
    vb = options.momentum * vb - options.learningRate * gb;
    b += vb;
  }
  return { kind: 'logistic', weights: w, bias: b };
}

/** Trains a one-hidden-layer ReLU network on standardised features `xs` (rows × cols). */
export function trainMlp(
  xs: Float64Array,
  y: Uint8Array,
  cols: number,
  options: MlpOptions,
): MlpModel {
  const rows = y.length;
  const h = options.hidden;
  const scale = Math.sqrt(2 / cols);
  const w1 = Float64Array.from({ length: cols * h }, () => options.random.normal(0, scale));
  const b1 = new Float64Array(h).fill(0.01);
  const w2 = Float64Array.from({ length: h }, () => options.random.normal(0, Math.sqrt(1 / h)));
  let b2 = 0;

  const params = [w1, b1, w2];
  const velocity = params.map((p) => new Float64Array(p.length));
  const grads = params.map((p) => new Float64Array(p.length));
  let vb2 = 0;
  const act = new Float64Array(h);

  for (let epoch = 0; epoch < options.epochs; epoch++) {
    const [gw1, gb1, gw2] = grads as [Float64Array, Float64Array, Float64Array];
    for (const g of grads) g.fill(0);
    let gb2 = 0;
    for (let i = 0; i < rows; i++) {
      const base = i * cols;
      let z = b2;
      for (let k = 0; k < h; k++) {
        let a = b1[k]!;
        for (let j = 0; j < cols; j++) a += xs[base + j]! * w1[j * h + k]!;
        act[k] = a > 0 ? a : 0;
        z += act[k]! * w2[k]!;
      }
      const dz = (sigmoid(z) - y[i]!) / rows;
      gb2 += dz;
      for (let k = 0; k < h; k++) {
        gw2[k]! += act[k]! * dz;
        if (act[k]! <= 0) continue;
        const da = dz * w2[k]!;
        gb1[k]! += da;
        for (let j = 0; j < cols; j++) gw1[j * h + k]! += xs[base + j]! * da;
      }
    }
    params.forEach((p, n) => {
      const g = grads[n]!;
      const v = velocity[n]!;
      // Biases (b1, index 1) are not penalised.
      const l2 = n === 1 ? 0 : options.l2;
      for (let k = 0; k < p.length; k++) {
        v[k] = options.momentum * v[k]! - options.learningRate * (g[k]! + l2 * p[k]!);
        p[k]! += v[k]!;
      }
    });
    vb2 = options.momentum * vb2 - options.learningRate * gb2;
    b2 += vb2;
  }
  return { kind: 'mlp', hidden: h, w1, b1, w2, b2 };
}

/** Probability for one standardised row, in float64 (used for evaluation, not serving). */
export function predictRow(model: TrainedModel, row: ArrayLike<number>): number {
  const cols = row.length;
  if (model.kind === 'logistic') {
    let z = model.bias;
    for (let j = 0; j < cols; j++) z += model.weights[j]! * row[j]!;
    return sigmoid(z);
  }
  let z = model.b2;
  for (let k = 0; k < model.hidden; k++) {
    let a = model.b1[k]!;
    for (let j = 0; j < cols; j++) a += row[j]! * model.w1[j * model.hidden + k]!;
    if (a > 0) z += a * model.w2[k]!;
  }
  return sigmoid(z);
}

/** Hold-out quality of a model. */
export interface Evaluation {
  rows: number;
  positiveRate: number;
  logLoss: number;
  accuracy: number;
  auc: number;
}

/** Log-loss, accuracy at 0.5 and ROC AUC of `model` on standardised features `xs`. */
export function evaluate(
  model: TrainedModel,
  xs: Float64Array,
  y: Uint8Array,
  cols: number,
): Evaluation {
  const rows = y.length;
  const scores = new Float64Array(rows);
  let logLoss = 0;
  let correct = 0;
  let positives = 0;
  for (let i = 0; i < rows; i++) {
    const p = predictRow(model, xs.subarray(i * cols, (i + 1) * cols));
    scores[i] = p;
    const pc = Math.min(1 - 1e-12, Math.max(1e-12, p));
    logLoss -= y[i] === 1 ? Math.log(pc) : Math.log(1 - pc);
    if ((p >= 0.5 ? 1 : 0) === y[i]) correct += 1;
    positives += y[i]!;
  }
  return {
    rows,
    positiveRate: positives / rows,
    logLoss: logLoss / rows,
    accuracy: correct / rows,
    auc: rocAuc(scores, y),
  };
}

/** Mann–Whitney estimate of ROC AUC, ties counted as one half. */
function rocAuc(scores: Float64Array, y: Uint8Array): number {
  const order = Array.from(scores.keys()).sort((a, b) => scores[a]! - scores[b]!);
  let rankSumPositive = 0;
  let positives = 0;
  let i = 0;
  while (i < order.length) {
    let j = i;
    while (j + 1 < order.length && scores[order[j + 1]!] === scores[order[i]!]) j += 1;
    const averageRank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) {
      if (y[order[k]!] === 1) {
        rankSumPositive += averageRank;
        positives += 1;
      }
    }
    i = j + 1;
  }
  const negatives = order.length - positives;
  if (positives === 0 || negatives === 0) return Number.NaN;
  return (rankSumPositive - (positives * (positives + 1)) / 2) / (positives * negatives);
}
