import { GraphQLError } from 'graphql';
import { type GatewayError, isGatewayError } from '../errors.js';

/**
 * The GraphQL error a coded gateway error becomes at the edge: same message, same extensions
 * (code, details and, for a request error, the `http` status Apollo Server applies), the coded
 * error kept as `originalError` for the formatter and the logs. Below this layer errors know
 * nothing of GraphQL.
 */
export function toGraphQLError(error: GatewayError): GraphQLError {
  return new GraphQLError(error.message, { originalError: error, extensions: error.extensions });
}

/** The coded gateway error behind a thrown value or a GraphQL error made from one, if any. */
export function gatewayErrorOf(error: unknown): GatewayError | undefined {
  if (isGatewayError(error)) return error;
  if (error instanceof GraphQLError && isGatewayError(error.originalError)) {
    return error.originalError;
  }
  return undefined;
}
