import type { AnswerShape, ShapeField } from '../bindings.js';

/** JSON values a scalar kind accepts from a service. */
function scalarProblem(value: unknown, shape: Extract<AnswerShape, { kind: 'scalar' }>): boolean {
  switch (shape.scalar) {
    case 'ID':
      return typeof value !== 'string' && !(typeof value === 'number' && Number.isInteger(value));
    case 'String':
    case 'DateTime':
      return typeof value !== 'string';
    case 'Int':
      return typeof value !== 'number' || !Number.isInteger(value) || Math.abs(value) > 2 ** 31 - 1;
    case 'Float':
      return typeof value !== 'number' || !Number.isFinite(value);
    case 'Boolean':
      return typeof value !== 'boolean';
    case 'Enum':
      return typeof value !== 'string' || !(shape.enumValues ?? []).includes(value);
  }
}

function valueProblem(value: unknown, shape: AnswerShape, at: string): string | undefined {
  if (shape.kind === 'scalar') {
    return scalarProblem(value, shape)
      ? `${at || 'the answer'} is not ${shape.scalar === 'Enum' ? 'one of its enum values' : `a valid ${shape.scalar}`}`
      : undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return `${at || 'the answer'} is not an object`;
  }
  if (shape.kind === 'any-object') return undefined;
  for (const field of shape.fields) {
    const problem = checkAnswer(
      (value as Record<string, unknown>)[field.name],
      field,
      `${at}.${field.name}`,
    );
    if (problem) return problem;
  }
  return undefined;
}

/**
 * Why a service's JSON value cannot be `field`'s value, or undefined when it can: nulls where
 * the type allows them, lists where it has lists, scalars of the right JSON type (enums among
 * their values), objects with every non-null field. Fields the type does not have are ignored.
 */
export function checkAnswer(value: unknown, field: ShapeField, at: string): string | undefined {
  if (value === null || value === undefined) {
    return field.nonNull ? `${at || 'the answer'} is missing` : undefined;
  }
  if (!field.list) return valueProblem(value, field.shape, at);
  if (!Array.isArray(value)) return `${at || 'the answer'} is not a list`;
  for (const [i, item] of value.entries()) {
    if (item === null || item === undefined) {
      if (field.itemNonNull) return `${at}[${i}] is missing`;
      continue;
    }
    const problem = valueProblem(item, field.shape, `${at}[${i}]`);
    if (problem) return problem;
  }
  return undefined;
}
