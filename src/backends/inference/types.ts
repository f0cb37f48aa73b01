/**
 * The largest finite FP32 value. OIP v2 tensors here are FP32: a larger feature would reach the
 * model as Infinity, so it is refused before it goes out.
 */
export const FP32_MAX = 3.4028234663852886e38;

/** One OIP v2 inference call: a batch of rows of `featureCount` FP32 features. */
export interface InferRequest {
  /** Model name on the backend (`{model}` in `/v2/models/{model}/infer`). */
  model: string;
  /** Model version; omitted → the server's version policy chooses. */
  version?: string | undefined;
  /**
   * The batch: either one flat row-major `Float32Array` of `N × featureCount` values, or
   * `N` rows of `featureCount` numbers each. Values must be finite FP32 (|v| ≤ `FP32_MAX`).
   */
  inputs: Float32Array | readonly (readonly number[])[];
  /** Width of one row; the request tensor has shape `[N, featureCount]`. */
  featureCount: number;
  /** Name of the model's input tensor. Default `features`. */
  inputName?: string | undefined;
  /** Name of the output tensor holding one score per row. Default `probability`. */
  outputName?: string | undefined;
  /** The caller's cancellation; the client's own deadline applies as well. */
  signal?: AbortSignal | undefined;
  /**
   * The tenant whose rows these are. Its failures count against its own breaker on the
   * backend, so they cannot open the breaker other tenants share (see `resilience/policy.ts`).
   */
  tenant?: string | undefined;
  /** Request headers of the call: the ids and trace context of the requests it serves. */
  headers?: Readonly<Record<string, string>> | undefined;
}

export interface InferResult {
  /** `model_name` from the response (always equal to the requested model). */
  modelName: string;
  /** `model_version` from the response; the requested version if the server omits it. */
  modelVersion: string;
  /** One score per input row, in input order. */
  scores: number[];
}

/** A tensor as described by OIP v2 model metadata. `-1` marks a variable dimension. */
export interface TensorMetadata {
  name: string;
  datatype: string;
  shape: number[];
}

export interface ModelMetadata {
  name: string;
  versions: string[];
  platform: string;
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
}

/**
 * A client for one Open Inference Protocol v2 backend (Triton, KServe, MLServer, OVMS).
 * Every failure is a `GatewayError`: `BACKEND_TIMEOUT`, `BACKEND_UNAVAILABLE` or, for rows that
 * cannot be encoded or that the model cannot score (non-finite scores), `BAD_USER_INPUT`.
 */
export interface InferenceClient {
  /** `POST /v2/models/{model}[/versions/{version}]/infer`, with retries and a circuit breaker. */
  infer(request: InferRequest): Promise<InferResult>;
  /** `GET /v2/models/{model}[/versions/{version}]`; one attempt, no breaker. */
  modelMetadata(model: string, version?: string): Promise<ModelMetadata>;
  /** `GET …/ready`; `true` only on HTTP 200. Never throws: any failure is `false`. */
  modelReady(model: string, version?: string): Promise<boolean>;
  /** `GET /v2/health/ready`; `true` only on HTTP 200. Never throws. */
  serverReady(): Promise<boolean>;
  /** Closes the connection pool the client created (not an injected dispatcher). Idempotent. */
  close(): Promise<void>;
}
