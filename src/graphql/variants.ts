import { getDirective, MapperKind, mapSchema, pruneSchema } from '@graphql-tools/utils';
import {
  type GraphQLSchema,
  isEnumType,
  isInputObjectType,
  isInterfaceType,
  isIntrospectionType,
  isObjectType,
  validateSchema,
} from 'graphql';
import type { Tenant } from '../tenancy/tenant.js';
import { SOURCE_DIRECTIVES } from './bindings.js';

/** The directive declared in src/graphql/engine/feature.graphql. */
export const FEATURE_DIRECTIVE = 'feature';

/** Something `@feature` can be applied to: a type, field, argument or enum value (config or object). */
type Directable = Parameters<typeof getDirective>[1];

export interface SchemaVariants {
  /** Every feature name that some `@feature` in the SDL mentions (the relevant ones). */
  readonly features: ReadonlySet<string>;
  /**
   * The schema a tenant sees: the full schema without the elements whose feature the tenant
   * lacks, and without the `@feature` directive definition. Tenants with the same relevant
   * features get the same object (the gateway keeps one Apollo Server per object).
   */
  schemaFor(tenant: Pick<Tenant, 'features'>): GraphQLSchema;
  /** The key of a tenant's variant: its relevant features, sorted. For logs and tests. */
  variantKey(tenant: Pick<Tenant, 'features'>): string;
  /** Variants built so far. */
  size(): number;
}

function featureOf(schema: GraphQLSchema, node: Directable, where: string): string | undefined {
  const uses = getDirective(schema, node, FEATURE_DIRECTIVE);
  const use = uses?.[0];
  if (use === undefined) return undefined;
  const name: unknown = use['name'];
  if (typeof name !== 'string' || name === '') {
    throw new TypeError(
      `@${FEATURE_DIRECTIVE} on ${where} needs a non-empty name; got ${String(name)}`,
    );
  }
  return name;
}

/** Walks every place the directive may sit and collects the feature names it names. */
function collectFeatures(schema: GraphQLSchema): Set<string> {
  const found = new Set<string>();
  const note = (node: Directable, where: string) => {
    const name = featureOf(schema, node, where);
    if (name !== undefined) found.add(name);
  };
  for (const type of Object.values(schema.getTypeMap())) {
    if (isIntrospectionType(type)) continue;
    note(type, type.name);
    if (isObjectType(type) || isInterfaceType(type)) {
      for (const field of Object.values(type.getFields())) {
        note(field, `${type.name}.${field.name}`);
        for (const arg of field.args) note(arg, `${type.name}.${field.name}(${arg.name})`);
      }
    } else if (isInputObjectType(type)) {
      for (const field of Object.values(type.getFields()))
        note(field, `${type.name}.${field.name}`);
    } else if (isEnumType(type)) {
      for (const value of type.getValues()) note(value, `${type.name}.${value.name}`);
    }
  }
  return found;
}

/**
 * Per-tenant schema variants from one full schema whose SDL tags elements with
 * `@feature(name: "…")`. A variant is built on first use and kept, one per distinct set of
 * relevant features, so the number of variants is bounded by the feature combinations tenants
 * actually have, not by the number of tenants. Resolvers, scalars and enum values of the full
 * schema carry over unchanged; since validation runs against the variant, an operation that
 * names a hidden field fails as "Cannot query field" before any resolver runs.
 *
 * Throws (at once, or on the first use of a combination) when the SDL misuses the directive
 * or a combination leaves an invalid schema, e.g. an object left without fields that a
 * visible field still returns, or an interface field hidden from only some implementations.
 */
export function createSchemaVariants(fullSchema: GraphQLSchema): SchemaVariants {
  const features: ReadonlySet<string> = collectFeatures(fullSchema);
  const variants = new Map<string, GraphQLSchema>();

  const relevant = (tenant: Pick<Tenant, 'features'>): string[] =>
    [...features].filter((name) => tenant.features.has(name)).sort();

  function build(enabled: ReadonlySet<string>, key: string): GraphQLSchema {
    const hidden = (node: Directable, where: string): boolean => {
      const name = featureOf(fullSchema, node, where);
      return name !== undefined && !enabled.has(name);
    };
    const mapped = mapSchema(fullSchema, {
      [MapperKind.TYPE]: (type) => (hidden(type, type.name) ? null : type),
      [MapperKind.COMPOSITE_FIELD]: (field, name, typeName) =>
        hidden(field, `${typeName}.${name}`) ? null : field,
      [MapperKind.INPUT_OBJECT_FIELD]: (field, name, typeName) =>
        hidden(field, `${typeName}.${name}`) ? null : field,
      [MapperKind.ARGUMENT]: (arg, fieldName, typeName, argName) =>
        hidden(arg, `${typeName}.${fieldName}(${argName})`) ? null : arg,
      [MapperKind.ENUM_VALUE]: (value, typeName, _schema, externalValue) =>
        hidden(value, `${typeName}.${externalValue}`) ? null : value,
      // Clients have no use for them, and a tenant should not learn which features exist or
      // where the data comes from.
      [MapperKind.DIRECTIVE]: (directive) =>
        directive.name === FEATURE_DIRECTIVE || SOURCE_DIRECTIVES.has(directive.name)
          ? null
          : directive,
    });
    // Types reachable only through hidden fields go too, so they do not show in introspection.
    const variant = pruneSchema(mapped);
    const errors = validateSchema(variant);
    if (errors.length > 0) {
      throw new Error(
        `The schema variant for features [${key}] is invalid: ${errors.map((e) => e.message).join('; ')}`,
      );
    }
    return variant;
  }

  function variantKey(tenant: Pick<Tenant, 'features'>): string {
    return relevant(tenant).join(',');
  }

  function schemaFor(tenant: Pick<Tenant, 'features'>): GraphQLSchema {
    const enabled = relevant(tenant);
    // JSON: feature names are free text and may contain any separator.
    const key = JSON.stringify(enabled);
    let variant = variants.get(key);
    if (!variant) {
      variant = build(new Set(enabled), enabled.join(','));
      variants.set(key, variant);
    }
    return variant;
  }

  // Fail at start, not on some tenant's first request, for the two combinations every
  // deployment is likely to have.
  schemaFor({ features: new Set() });
  schemaFor({ features });

  return { features, schemaFor, variantKey, size: () => variants.size };
}
