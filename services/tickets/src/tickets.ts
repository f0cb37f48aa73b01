/**
 * The service's data: support tickets generated from (tenant, customer id), so any customer id
 * has tickets without seeding and every run, process and replica answers the same.
 */
import { createHash } from 'node:crypto';

export const TICKET_STATUSES = ['OPEN', 'PENDING', 'SOLVED'] as const;
export const TICKET_PRIORITIES = ['LOW', 'NORMAL', 'HIGH', 'URGENT'] as const;

export type TicketStatus = (typeof TICKET_STATUSES)[number];
export type TicketPriority = (typeof TICKET_PRIORITIES)[number];

/** One ticket as the HTTP API answers it. */
export interface Ticket {
  /** Opaque, unique within the tenant; it does not contain the tenant. */
  id: string;
  customerId: string;
  subject: string;
  status: TicketStatus;
  priority: TicketPriority;
  /** ISO 8601, UTC. */
  openedAt: string;
}

/** A customer has 0..MAX_TICKETS_PER_CUSTOMER tickets. */
export const MAX_TICKETS_PER_CUSTOMER = 4;

// A fixed epoch, not the clock: the same ticket opens at the same instant in every run.
const EPOCH_MS = Date.UTC(2025, 0, 1);
const WINDOW_S = 365 * 24 * 3600;

const SUBJECTS = [
  'Cannot log in after password reset',
  'Invoice shows the wrong amount',
  'Export to CSV times out',
  'Refund not received',
  'Two-factor codes arrive late',
  'Add a second admin to the account',
  'Webhook deliveries failing',
  'Change the billing address',
  'Dashboard loads slowly',
  'Cancel the annual plan',
  'API rate limit too low',
  'Missing order confirmation email',
  'Data import stuck at 99%',
  'Card declined on renewal',
  'Request a copy of our data',
  'SSO redirect loop',
] as const;

// Weighted so that most tickets are solved and few are urgent, like a real queue.
const STATUS_WEIGHTS: ReadonlyArray<readonly [TicketStatus, number]> = [
  ['OPEN', 3],
  ['PENDING', 2],
  ['SOLVED', 5],
];
const PRIORITY_WEIGHTS: ReadonlyArray<readonly [TicketPriority, number]> = [
  ['LOW', 3],
  ['NORMAL', 5],
  ['HIGH', 2],
  ['URGENT', 1],
];

/**
 * The tickets of one customer of one tenant, newest first. The generator is seeded with both,
 * so two tenants asking for the same customer id get different tickets (and different ids).
 */
export function ticketsOf(tenant: string, customerId: string): Ticket[] {
  const seed = digest(tenant, customerId);
  const random = sfc32(seed.readUInt32BE(0), seed.readUInt32BE(4), seed.readUInt32BE(8), 0);
  // sfc32's first outputs still echo the seed; the usual warm-up mixes it.
  for (let i = 0; i < 12; i++) random();
  const count = Math.floor(random() * (MAX_TICKETS_PER_CUSTOMER + 1));
  const tickets: Ticket[] = [];
  for (let i = 0; i < count; i++) {
    const openedAtS = Math.floor(random() * WINDOW_S);
    tickets.push({
      // 96 bits of a hash over (tenant, customer, ordinal): collisions within a tenant are
      // out of reach in practice, and nothing about the tenant can be read from the id.
      id: `TCK-${digest(tenant, customerId, String(i)).subarray(0, 12).toString('hex')}`,
      customerId,
      subject: SUBJECTS[Math.floor(random() * SUBJECTS.length)]!,
      status: weighted(STATUS_WEIGHTS, random()),
      priority: weighted(PRIORITY_WEIGHTS, random()),
      openedAt: new Date(EPOCH_MS - openedAtS * 1000).toISOString(),
    });
  }
  return tickets.sort((a, b) => (a.openedAt < b.openedAt ? 1 : a.openedAt > b.openedAt ? -1 : 0));
}

/** The tickets of several customers, customer by customer in the order given. */
export function ticketsOfMany(
  tenant: string,
  customerIds: readonly string[],
  statuses?: ReadonlySet<TicketStatus>,
): Ticket[] {
  const items: Ticket[] = [];
  for (const customerId of customerIds) {
    for (const ticket of ticketsOf(tenant, customerId)) {
      if (statuses === undefined || statuses.has(ticket.status)) items.push(ticket);
    }
  }
  return items;
}

/** NUL-separated parts cannot run into each other ("ab"+"c" vs "a"+"bc"). */
function digest(...parts: string[]): Buffer {
  return createHash('sha256').update(parts.join('\u0000')).digest();
}

function weighted<T>(choices: ReadonlyArray<readonly [T, number]>, r: number): T {
  const total = choices.reduce((sum, [, w]) => sum + w, 0);
  let at = r * total;
  for (const [value, w] of choices) {
    if (at < w) return value;
    at -= w;
  }
  return choices[choices.length - 1]![0];
}

/** sfc32: a small, fast PRNG with a 128-bit state; good enough for demo data. */
function sfc32(a: number, b: number, c: number, d: number): () => number {
  return () => {
    a |= 0;
    b |= 0;
    c |= 0;
    d |= 0;
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
}
