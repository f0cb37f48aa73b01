import { bindingName } from '../sources/bindings.js';
import type { GatewaySchema } from './schema.js';

/** How one bound field resolves, for `npm run check` (a static N+1 check). */
export interface FieldResolution {
  /** `Type.field`. */
  field: string;
  batched: boolean;
  how: string;
}

/**
 * Every field with a source, and how it resolves: the engine's bindings batch per request
 * (one statement per binding and argument shape, one infer call per model and version); a
 * field answered by the operator's resolver module is not batched by the engine, and a list
 * of parents that each call it is a possible N+1.
 */
export function fieldResolutions({ bindings, resolved }: GatewaySchema): FieldResolution[] {
  const rows: FieldResolution[] = bindings.fields.map((b) => {
    const field = bindingName(b);
    switch (b.kind) {
      case 'lookup':
        return {
          field,
          batched: true,
          how: `one statement per batch of lookups (${b.table.table}.${b.column.column})`,
        };
      case 'connection':
        return {
          field,
          batched: true,
          how: `one statement per page (${b.table.table}, keyset on ${b.table.key.column})`,
        };
      case 'relation':
        return {
          field,
          batched: true,
          how: b.many
            ? `one statement per batch of parents (${b.to.table}.${b.childColumn}, ranked per parent)`
            : `one statement per batch of parents (${b.to.table}.${b.childColumn})`,
        };
      case 'insert':
        return { field, batched: true, how: `one INSERT per mutation field (${b.table.table})` };
      case 'infer':
        return {
          field,
          batched: true,
          how: `one infer call per batch and (model, version) (model ${b.model})`,
        };
      case 'http':
        return b.batch
          ? {
              field,
              batched: true,
              how: `one ${b.service} call per batch of parents (${b.batch.param})`,
            }
          : {
              field,
              batched: false,
              how: `one ${b.service} call per distinct request (deduplicated, bounded per tenant): no batch form (batchParam)`,
            };
    }
  });
  for (const field of resolved) {
    rows.push({
      field,
      batched: false,
      how: 'answered by schema.resolvers: not batched by the engine (use ctx.loaders for a batch)',
    });
  }
  return rows;
}
