import { describe, expect, it } from 'vitest';
import { createPrng } from '../../../examples/demo/prng.js';
import { generateTenantData, SEED_EPOCH } from '../../../examples/demo/seed.js';

describe('generateTenantData', () => {
  it('is deterministic per tenant and stable when more customers are asked for', () => {
    const a = generateTenantData('acme', { size: 30 });
    expect(generateTenantData('acme', { size: 30 })).toEqual(a);
    const more = generateTenantData('acme', { size: 50 });
    expect(more.customers.slice(0, 30)).toEqual(a.customers);
  });

  it('gives different tenants disjoint ids', () => {
    const ids = (tenant: string) => {
      const d = generateTenantData(tenant, { size: 200 });
      return [...d.customers.map((c) => c.id), ...d.orders.map((o) => o.id)];
    };
    const acme = ids('acme');
    const globex = new Set(ids('globex'));
    expect(new Set(acme).size).toBe(acme.length);
    expect(acme.filter((id) => globex.has(id))).toEqual([]);
    expect(acme[0]).toMatch(/^cus_[0-9a-z]{12}$/);
  });

  it('keeps every feature within the documented ranges', () => {
    const { customers, orders } = generateTenantData('ranges', {
      size: 300,
      ordersPerCustomer: { min: 0, max: 12 },
    });
    expect(customers).toHaveLength(300);
    for (const c of customers) {
      expect(['SMB', 'MID_MARKET', 'ENTERPRISE']).toContain(c.segment);
      expect(c.country).toMatch(/^[A-Z]{2}$/);
      expect(c.email).toMatch(/^[a-z.]+\.\d+@ranges\.example$/);
      expect(c.tenureMonths).toBeGreaterThanOrEqual(0);
      expect(c.tenureMonths).toBeLessThanOrEqual(120);
      expect(c.monthlySpend).toBeGreaterThanOrEqual(0);
      expect(c.monthlySpend).toBeLessThanOrEqual(5000);
      expect(c.supportTickets).toBeGreaterThanOrEqual(0);
      expect(c.supportTickets).toBeLessThanOrEqual(30);
      expect(c.daysSinceLastLogin).toBeGreaterThanOrEqual(0);
      expect(c.daysSinceLastLogin).toBeLessThanOrEqual(365);
      expect(c.lifetimeValue).toBeGreaterThanOrEqual(0);
      expect(c.lifetimeValue).toBeLessThanOrEqual(200_000);
      expect(c.createdAt.getTime()).toBeLessThan(SEED_EPOCH);
    }
    const perCustomer = new Map<string, number>();
    for (const o of orders) {
      perCustomer.set(o.customerId, (perCustomer.get(o.customerId) ?? 0) + 1);
      expect(o.amount).toBeGreaterThanOrEqual(1);
      expect(o.amount).toBeLessThanOrEqual(5000);
      expect(o.currency).toMatch(/^[A-Z]{3}$/);
      expect(['WEB', 'MOBILE', 'STORE', 'PHONE']).toContain(o.channel);
      expect(o.itemCount).toBeGreaterThanOrEqual(1);
      expect(o.itemCount).toBeLessThanOrEqual(20);
      expect(o.paymentAttempts).toBeGreaterThanOrEqual(1);
      expect(o.paymentAttempts).toBeLessThanOrEqual(5);
      expect(o.hourOfDay).toBe(o.createdAt.getUTCHours());
    }
    expect(Math.max(...perCustomer.values())).toBeLessThanOrEqual(12);
    // Some customers have no orders at all with min 0.
    expect(perCustomer.size).toBeLessThan(300);
    // Segments and channels are all represented.
    expect(new Set(customers.map((c) => c.segment)).size).toBe(3);
    expect(new Set(orders.map((o) => o.channel)).size).toBe(4);
  });

  it('rejects nonsensical sizes', () => {
    expect(() => generateTenantData('x', { size: -1 })).toThrow(TypeError);
    expect(() => generateTenantData('x', { ordersPerCustomer: { min: 5, max: 2 } })).toThrow(
      TypeError,
    );
  });
});

describe('createPrng', () => {
  it('repeats for a seed and differs between seeds', () => {
    const a = createPrng('seed');
    const b = createPrng('seed');
    const c = createPrng('other');
    const seqA = Array.from({ length: 5 }, () => a.next());
    expect(Array.from({ length: 5 }, () => b.next())).toEqual(seqA);
    expect(Array.from({ length: 5 }, () => c.next())).not.toEqual(seqA);
    for (let i = 0; i < 1000; i += 1) {
      const n = a.int(3, 5);
      expect(n >= 3 && n <= 5 && Number.isInteger(n)).toBe(true);
    }
  });
});
