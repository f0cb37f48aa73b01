/**
 * The realm's data: a loyalty account per (tenant, customer id), generated from a hash of both,
 * so any customer id works with no seeding, every process answers the same, and two tenants get
 * different accounts for the same id.
 */
import { createHash } from 'node:crypto';

export const LOYALTY_TIERS = ['BRONZE', 'SILVER', 'GOLD', 'PLATINUM'] as const;
export type LoyaltyTier = (typeof LOYALTY_TIERS)[number];

/** Points from which a tier starts, and what it brings. */
export const TIER_TABLE: readonly { tier: LoyaltyTier; minPoints: number; perks: string[] }[] = [
  { tier: 'BRONZE', minPoints: 0, perks: ['newsletter'] },
  { tier: 'SILVER', minPoints: 1_000, perks: ['newsletter', 'free shipping'] },
  { tier: 'GOLD', minPoints: 5_000, perks: ['newsletter', 'free shipping', 'priority support'] },
  {
    tier: 'PLATINUM',
    minPoints: 20_000,
    perks: ['newsletter', 'free shipping', 'priority support', 'account manager'],
  },
];

export interface LoyaltyAccount {
  customerId: string;
  tier: LoyaltyTier;
  points: number;
}

/** The account of one customer of one tenant. */
export function loyaltyAccount(tenant: string, customerId: string): LoyaltyAccount {
  // NUL separates the parts: neither a tenant id nor a customer id can fake the other's.
  const digest = createHash('sha256').update(`${tenant}\u0000${customerId}`).digest();
  const points = digest.readUInt32BE(0) % 30_000;
  let tier: LoyaltyTier = 'BRONZE';
  for (const row of TIER_TABLE) if (points >= row.minPoints) tier = row.tier;
  return { customerId, tier, points };
}
