/** Who is calling, from verified claims only. */
export interface Principal {
  readonly tenantId: string;
  readonly subject: string;
  readonly scopes: readonly string[];
  /** All verified claims, for resolvers that need more (never unverified input). */
  readonly claims: Readonly<Record<string, unknown>>;
  /** Seconds since epoch; the token is not used past it. */
  readonly expiresAt: number;
}
