import { MAX_CALL_COST_MS, type ModelConfigInput } from './model-config.js';

/**
 * Reads Triton's `config.pbtxt` (a `ModelConfig` message in protobuf text format) into this
 * server's config shape, with Triton's semantics: when `max_batch_size` > 0 the `dims` leave
 * out the batch dimension (it is added as -1, and `max_batch_size` caps it); without a
 * `version_policy` only the latest version is served; `instance_group` counts are the
 * instances of each version's device, and `parameters { key: "call_cost_ms" … }` its fixed cost
 * per call. Other fields that only tune Triton's scheduling (dynamic batching, warm-up, …)
 * are ignored with a warning;
 * fields that would change what a request means (reshape, sequence batching, ensembles, …)
 * are refused, so a repository is never served differently from how Triton would serve it.
 */

/** A `config.pbtxt` that is not valid text format or asks for what this server cannot do. */
export class TritonConfigError extends Error {
  override readonly name = 'TritonConfigError';
}

type Scalar =
  | { kind: 'string'; value: string }
  | { kind: 'number'; value: number; text: string }
  | { kind: 'identifier'; value: string };
interface Field {
  name: string;
  value: Scalar | Message;
  line: number;
}
interface Message {
  kind: 'message';
  fields: Field[];
}

/** Top-level fields that tune Triton's scheduling or performance, not the answers. */
const IGNORED_FIELDS = new Set([
  'dynamic_batching',
  'optimization',
  'model_warmup',
  'response_cache',
  'model_operations',
  'model_transaction_policy',
  'model_repository_agents',
  'metric_tags',
  'runtime',
  'cc_model_filenames',
]);
const TENSOR_FIELDS = new Set(['name', 'data_type', 'dims', 'format', 'label_filename']);

/** The parsed config (in `config.json` terms, still to be validated) and what was ignored. */
export interface TritonConfig {
  config: ModelConfigInput;
  warnings: string[];
}

/** Parses `config.pbtxt` text. Throws {@link TritonConfigError} naming the line or field. */
export function parseTritonConfig(text: string): TritonConfig {
  const root = parseTextFormat(text);
  const warnings: string[] = [];
  const seen = new Set<string>();
  for (const field of root.fields) {
    if (IGNORED_FIELDS.has(field.name)) {
      if (!seen.has(field.name)) warnings.push(`${field.name} is ignored by this server`);
    } else if (
      ![
        'name',
        'platform',
        'backend',
        'max_batch_size',
        'input',
        'output',
        'version_policy',
        'default_model_filename',
        'instance_group',
        'parameters',
      ].includes(field.name)
    ) {
      throw new TritonConfigError(
        `line ${field.line}: ${field.name} is not supported by this server`,
      );
    }
    seen.add(field.name);
  }

  const platform = optionalString(root, 'platform');
  const backend = optionalString(root, 'backend');
  if (
    (platform !== undefined && platform !== 'onnxruntime_onnx') ||
    (backend !== undefined && backend !== 'onnxruntime')
  ) {
    throw new TritonConfigError(
      `only ONNX models are served (platform "onnxruntime_onnx" or backend "onnxruntime"), ` +
        `got ${platform !== undefined ? `platform "${platform}"` : `backend "${String(backend)}"`}`,
    );
  }
  const maxBatchSize = optionalInteger(root, 'max_batch_size') ?? 0;
  if (maxBatchSize < 0)
    throw new TritonConfigError(`max_batch_size must be >= 0, got ${maxBatchSize}`);

  const tensors = (kind: 'input' | 'output'): ModelConfigInput['input'] =>
    all(root, kind).map((field, index) => {
      const where = `${kind}[${index}]`;
      const tensor = asMessage(field, where);
      for (const f of tensor.fields) {
        if (!TENSOR_FIELDS.has(f.name)) {
          throw new TritonConfigError(
            `line ${f.line}: ${where}.${f.name} is not supported by this server`,
          );
        }
      }
      const format = optionalIdentifier(tensor, 'format', where);
      if (format !== undefined && format !== 'FORMAT_NONE') {
        throw new TritonConfigError(
          `${where}.format ${format} is not supported (FORMAT_NONE only)`,
        );
      }
      const dataType = optionalIdentifier(tensor, 'data_type', where);
      if (dataType !== 'TYPE_FP32') {
        throw new TritonConfigError(
          `${where}.data_type must be TYPE_FP32 (the only type this server runs), got ${dataType ?? 'none'}`,
        );
      }
      const dims = all(tensor, 'dims').map((d) => integerOf(d, `${where}.dims`));
      return {
        name: requiredString(tensor, 'name', where),
        datatype: 'FP32' as const,
        // Triton: with batching on, dims describe one row; the batch dimension comes first.
        dims: maxBatchSize > 0 ? [-1, ...dims] : dims,
      };
    });

  const config: ModelConfigInput = {
    platform: 'onnxruntime_onnx',
    max_batch_rows: maxBatchSize,
    input: tensors('input'),
    output: tensors('output'),
    version_policy: versionPolicy(root),
  };
  const name = optionalString(root, 'name');
  if (name !== undefined) config.name = name;
  const filename = optionalString(root, 'default_model_filename');
  if (filename !== undefined) config.default_model_filename = filename;
  const groups = instanceGroups(root, warnings);
  if (groups !== undefined) config.instance_group = groups;
  const callCostMs = parameters(root, warnings);
  if (callCostMs !== undefined) config.call_cost_ms = callCostMs;
  return { config, warnings };
}

/**
 * `instance_group [ { count: 2 kind: KIND_GPU } ]`: the counts (Triton's default 1 each). Where
 * instances would run (kind, gpus, …) does not apply here: every one is a slot of this server.
 */
function instanceGroups(
  root: Message,
  warnings: string[],
): ModelConfigInput['instance_group'] | undefined {
  const fields = all(root, 'instance_group');
  if (fields.length === 0) return undefined;
  const ignored = new Set<string>();
  const groups = fields.map((field, index) => {
    const where = `instance_group[${index}]`;
    const group = asMessage(field, where);
    for (const f of group.fields) if (f.name !== 'count') ignored.add(f.name);
    const count = optionalInteger(group, 'count', where) ?? 1;
    if (count < 1) throw new TritonConfigError(`${where}.count must be >= 1, got ${count}`);
    return { count };
  });
  if (ignored.size > 0) {
    warnings.push(
      `instance_group ${[...ignored].join(', ')} ignored: every instance runs on this server's worker pool`,
    );
  }
  return groups;
}

/**
 * `parameters { key: "call_cost_ms" value: { string_value: "8" } }` (Triton's map of backend
 * settings): the device's fixed cost per call. Other keys are ignored with a warning.
 */
function parameters(root: Message, warnings: string[]): number | undefined {
  let callCostMs: number | undefined;
  all(root, 'parameters').forEach((field, index) => {
    const where = `parameters[${index}]`;
    const entry = asMessage(field, where);
    const key = requiredString(entry, 'key', where);
    if (key !== 'call_cost_ms') {
      warnings.push(`parameters "${key}" is ignored by this server`);
      return;
    }
    const valueField = all(entry, 'value');
    if (valueField.length === 0) throw new TritonConfigError(`${where}.value is missing`);
    const value = asMessage(single(valueField, `${where}.value`), `${where}.value`);
    const text = requiredString(value, 'string_value', `${where}.value`);
    const ms = Number(text);
    if (text.trim() === '' || !Number.isFinite(ms) || ms < 0 || ms > MAX_CALL_COST_MS) {
      throw new TritonConfigError(
        `line ${field.line}: parameters "call_cost_ms" must be a number of milliseconds in 0..${MAX_CALL_COST_MS}, got "${text}"`,
      );
    }
    if (callCostMs !== undefined) {
      throw new TritonConfigError(`line ${field.line}: parameters "call_cost_ms" is given twice`);
    }
    callCostMs = ms;
  });
  return callCostMs;
}

function versionPolicy(root: Message): NonNullable<ModelConfigInput['version_policy']> {
  const fields = all(root, 'version_policy');
  // Triton's default: the newest version only.
  if (fields.length === 0) return { latest: { num_versions: 1 } };
  const policy = asMessage(single(fields, 'version_policy'), 'version_policy');
  const [choice, ...rest] = policy.fields;
  if (choice === undefined || rest.length > 0) {
    throw new TritonConfigError('version_policy must hold exactly one of latest, all, specific');
  }
  const body = asMessage(choice, `version_policy.${choice.name}`);
  switch (choice.name) {
    case 'all':
      return { all: {} };
    case 'latest': {
      const n = optionalInteger(body, 'num_versions', 'version_policy.latest');
      if (n === undefined) {
        throw new TritonConfigError('version_policy.latest needs num_versions');
      }
      return { latest: { num_versions: n } };
    }
    case 'specific':
      return {
        specific: {
          versions: all(body, 'versions').map((v) =>
            integerOf(v, 'version_policy.specific.versions'),
          ),
        },
      };
    default:
      throw new TritonConfigError(
        `line ${choice.line}: version_policy.${choice.name} is not one of latest, all, specific`,
      );
  }
}

// --- field access -------------------------------------------------------------------------

function all(message: Message, name: string): Field[] {
  return message.fields.filter((f) => f.name === name);
}

function single(fields: Field[], where: string): Field {
  if (fields.length > 1) {
    throw new TritonConfigError(`line ${fields[1]!.line}: ${where} is given more than once`);
  }
  return fields[0]!;
}

function scalarOf(message: Message, name: string, where?: string): Scalar | undefined {
  const fields = all(message, name);
  if (fields.length === 0) return undefined;
  const path = where === undefined ? name : `${where}.${name}`;
  const field = single(fields, path);
  if (field.value.kind === 'message') {
    throw new TritonConfigError(`line ${field.line}: ${path} must be a value, not a message`);
  }
  return field.value;
}

function optionalString(message: Message, name: string, where?: string): string | undefined {
  const value = scalarOf(message, name, where);
  if (value === undefined) return undefined;
  if (value.kind !== 'string') {
    throw new TritonConfigError(
      `${where === undefined ? name : `${where}.${name}`} must be a quoted string, got ${value.value}`,
    );
  }
  return value.value;
}

function requiredString(message: Message, name: string, where: string): string {
  const value = optionalString(message, name, where);
  if (value === undefined) throw new TritonConfigError(`${where}.${name} is missing`);
  return value;
}

function optionalIdentifier(message: Message, name: string, where: string): string | undefined {
  const value = scalarOf(message, name, where);
  if (value === undefined) return undefined;
  if (value.kind !== 'identifier') {
    throw new TritonConfigError(
      `${where}.${name} must be an enum name, got ${String(value.value)}`,
    );
  }
  return value.value;
}

function optionalInteger(message: Message, name: string, where?: string): number | undefined {
  const fields = all(message, name);
  if (fields.length === 0) return undefined;
  const path = where === undefined ? name : `${where}.${name}`;
  return integerOf(single(fields, path), path);
}

function integerOf(field: Field, where: string): number {
  const value = field.value;
  if (value.kind !== 'number' || !Number.isSafeInteger(value.value)) {
    const found = value.kind === 'message' ? 'a message' : String(value.value);
    throw new TritonConfigError(`line ${field.line}: ${where} must be an integer, got ${found}`);
  }
  return value.value;
}

function asMessage(field: Field, where: string): Message {
  if (field.value.kind !== 'message') {
    throw new TritonConfigError(`line ${field.line}: ${where} must be a message ({ … })`);
  }
  return field.value;
}

// --- protobuf text format ------------------------------------------------------------------

interface Token {
  type: 'identifier' | 'number' | 'string' | 'punct';
  text: string;
  /** The decoded value of a string token. */
  value?: string;
  line: number;
}

const TOKEN =
  /\s+|#[^\n]*|([A-Za-z_][A-Za-z0-9_]*)|(-?(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)[fF]?)|("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')|([:{}<>[\],;])/y;

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let line = 1;
  TOKEN.lastIndex = 0;
  while (TOKEN.lastIndex < text.length) {
    const start = TOKEN.lastIndex;
    const match = TOKEN.exec(text);
    if (match === null) {
      throw new TritonConfigError(
        `line ${line}: unexpected character ${JSON.stringify(text[start])}`,
      );
    }
    const [whole, identifier, number, string, punct] = match;
    if (identifier !== undefined) tokens.push({ type: 'identifier', text: identifier, line });
    else if (number !== undefined) tokens.push({ type: 'number', text: number, line });
    else if (string !== undefined)
      tokens.push({ type: 'string', text: string, value: unescape(string, line), line });
    else if (punct !== undefined) tokens.push({ type: 'punct', text: punct, line });
    line += whole.split('\n').length - 1;
  }
  return tokens;
}

const ESCAPES: Record<string, string> = {
  n: '\n',
  t: '\t',
  r: '\r',
  '\\': '\\',
  "'": "'",
  '"': '"',
  '?': '?',
  a: '\x07',
  b: '\b',
  f: '\f',
  v: '\v',
};

function unescape(quoted: string, line: number): string {
  return quoted.slice(1, -1).replace(/\\(x[0-9a-fA-F]{1,2}|[0-7]{1,3}|.)/g, (_, e: string) => {
    if (e.startsWith('x')) return String.fromCharCode(parseInt(e.slice(1), 16));
    if (/^[0-7]/.test(e)) return String.fromCharCode(parseInt(e, 8));
    const decoded = ESCAPES[e];
    if (decoded === undefined) throw new TritonConfigError(`line ${line}: unknown escape \\${e}`);
    return decoded;
  });
}

/**
 * The text format without a schema: `name: value`, `name { … }` / `name: < … >`, lists
 * `[a, b]` for repeated fields, `#` comments, optional `,`/`;` separators.
 */
function parseTextFormat(text: string): Message {
  const tokens = tokenize(text);
  let at = 0;
  const peek = (): Token | undefined => tokens[at];
  const lastLine = (): number => tokens[tokens.length - 1]?.line ?? 1;
  const expect = (texts: readonly string[]): Token => {
    const token = tokens[at++];
    if (token === undefined || token.type !== 'punct' || !texts.includes(token.text)) {
      throw new TritonConfigError(
        `line ${token?.line ?? lastLine()}: expected ${texts.join(' or ')}, got ${token?.text ?? 'end of file'}`,
      );
    }
    return token;
  };
  const isOpen = (t: Token | undefined): boolean =>
    t?.type === 'punct' && (t.text === '{' || t.text === '<');

  const message = (closer: string | undefined): Message => {
    const fields: Field[] = [];
    for (;;) {
      const token = peek();
      if (token === undefined) {
        if (closer !== undefined)
          throw new TritonConfigError(`line ${lastLine()}: missing ${closer}`);
        return { kind: 'message', fields };
      }
      if (token.type === 'punct' && token.text === closer) {
        at += 1;
        return { kind: 'message', fields };
      }
      if (token.type !== 'identifier') {
        throw new TritonConfigError(`line ${token.line}: expected a field name, got ${token.text}`);
      }
      at += 1;
      const name = token.text;
      const colon = peek()?.type === 'punct' && peek()?.text === ':';
      if (colon) at += 1;
      const next = peek();
      // The colon is optional before a message and before a list of messages
      // (`input [ { … } ]`, as Triton's documentation writes it).
      if (next?.type === 'punct' && next.text === '[') {
        at += 1;
        if (!(peek()?.type === 'punct' && peek()?.text === ']')) {
          for (;;) {
            fields.push({ name, value: value(), line: token.line });
            if (expect([',', ']']).text === ']') break;
          }
        } else {
          at += 1;
        }
      } else if (isOpen(next) || colon) {
        fields.push({ name, value: value(), line: token.line });
      } else {
        throw new TritonConfigError(
          `line ${token.line}: expected : or { after ${name}, got ${next?.text ?? 'end of file'}`,
        );
      }
      const separator = peek();
      if (separator?.type === 'punct' && (separator.text === ',' || separator.text === ';')) {
        at += 1;
      }
    }
  };

  const value = (): Scalar | Message => {
    const token = tokens[at];
    if (token === undefined) throw new TritonConfigError(`line ${lastLine()}: missing value`);
    if (isOpen(token)) {
      at += 1;
      return message(token.text === '{' ? '}' : '>');
    }
    at += 1;
    switch (token.type) {
      case 'string': {
        let decoded = token.value!;
        // Adjacent strings concatenate, as in C.
        while (peek()?.type === 'string') decoded += tokens[at++]!.value!;
        return { kind: 'string', value: decoded };
      }
      case 'number': {
        const text = token.text.replace(/[fF]$/, '');
        const negative = text.startsWith('-');
        const digits = negative ? text.slice(1) : text;
        const magnitude = /^0[xX]/.test(digits) ? parseInt(digits, 16) : Number(digits);
        return { kind: 'number', value: negative ? -magnitude : magnitude, text: token.text };
      }
      case 'identifier':
        return { kind: 'identifier', value: token.text };
      default:
        throw new TritonConfigError(`line ${token.line}: expected a value, got ${token.text}`);
    }
  };

  return message(undefined);
}
