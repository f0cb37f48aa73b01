import { z } from 'zod';

/**
 * The per-model `config.json` of the model repository, a JSON cousin of Triton's
 * `config.pbtxt`: `<repo>/<model>/config.json` next to numeric version folders holding
 * `model.onnx`. A Triton `config.pbtxt` is read into the same shape (`triton-config.ts`).
 */

/** Tensor element types this server can feed to / read from onnxruntime. */
export const SUPPORTED_DATATYPES = ['FP32'] as const;
/** Largest `instance_group` total. */
export const MAX_INSTANCES = 64;
/** Largest `call_cost_ms`: below the worker pool's 30 s run timeout. */
export const MAX_CALL_COST_MS = 10_000;

const tensorConfigSchema = z.object({
  name: z.string().min(1),
  datatype: z.enum(SUPPORTED_DATATYPES),
  /** Full shape including the batch dimension; -1 means any size (only the first may be -1). */
  dims: z
    .array(z.number().int().min(-1))
    .min(1)
    .refine((dims) => dims.every((d, i) => d > 0 || (d === -1 && i === 0)), {
      message: 'only the first (batch) dimension may be -1; others must be positive',
    }),
  /** Optional names of the columns of the last dimension, in order (documentation only). */
  columns: z.array(z.string().min(1)).optional(),
});

/** Triton's version policies: every version on disk, the newest N, or an explicit list. */
const versionPolicySchema = z.union([
  z.object({ all: z.object({}).strict() }).strict(),
  z.object({ latest: z.object({ num_versions: z.number().int().positive() }).strict() }).strict(),
  z
    .object({
      specific: z.object({ versions: z.array(z.number().int().positive()).min(1) }).strict(),
    })
    .strict(),
]);

export const modelConfigSchema = z.object({
  /** Must equal the folder name when given. */
  name: z.string().min(1).optional(),
  platform: z.literal('onnxruntime_onnx').default('onnxruntime_onnx'),
  /** Largest batch (first dimension) accepted in one request; 0 = no limit. */
  max_batch_rows: z.number().int().nonnegative().default(0),
  input: z.array(tensorConfigSchema).min(1),
  output: z.array(tensorConfigSchema).min(1),
  /** Which version folders are served. Default `all` (Triton's default is latest 1). */
  version_policy: versionPolicySchema.default({ all: {} }),
  description: z.string().optional(),
  /**
   * Triton's instance groups: how many calls of one version may execute at once (the sum of
   * the groups' `count`). Absent: no limit of its own; calls share the worker pool.
   */
  instance_group: z
    .array(z.object({ count: z.number().int().min(1).max(MAX_INSTANCES).default(1) }))
    .min(1)
    .refine((groups) => groups.reduce((n, g) => n + g.count, 0) <= MAX_INSTANCES, {
      message: `at most ${MAX_INSTANCES} instances in all`,
    })
    .optional(),
  /**
   * A fixed time (ms) each infer call holds its instance before the real compute runs, as the
   * launch and transfer cost of a GPU server does. With it and no `instance_group`: 1 instance.
   */
  call_cost_ms: z.number().nonnegative().max(MAX_CALL_COST_MS).optional(),
  /** The file each version folder holds (Triton's field; default `model.onnx`). */
  default_model_filename: z
    .string()
    .regex(/^[^/\\]+$/, 'a file name without a folder')
    .refine((f) => f !== '.' && f !== '..', 'a file name without a folder')
    .default('model.onnx'),
});

/** Parsed `config.json`. */
export type ModelConfig = z.infer<typeof modelConfigSchema>;
/** The `config.json` as written (defaults optional). */
export type ModelConfigInput = z.input<typeof modelConfigSchema>;
/** One input or output tensor of a model. */
export type TensorConfig = z.infer<typeof tensorConfigSchema>;
/** One of the three version policies. */
export type VersionPolicy = z.infer<typeof versionPolicySchema>;
