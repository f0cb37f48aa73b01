import { describe, expect, it } from 'vitest';
import {
  generateInvoicingData,
  MAX_INVOICES_PER_ACCOUNT,
  SEED_EPOCH,
} from '../../../examples/invoicing/seed.js';

describe('generateInvoicingData', () => {
  it('is deterministic per tenant and keeps a smaller seed as a prefix of a larger one', () => {
    const a = generateInvoicingData('acme', { size: 40 });
    expect(generateInvoicingData('acme', { size: 40 })).toEqual(a);
    const more = generateInvoicingData('acme', { size: 60 });
    expect(more.accounts.slice(0, 40)).toEqual(a.accounts);
    expect(more.invoices.slice(0, a.invoices.length)).toEqual(a.invoices);
    expect(generateInvoicingData('globex', { size: 40 }).accounts).not.toEqual(a.accounts);
  });

  it('numbers accounts 1..N and invoices 1..M, with unique invoice numbers per tenant', () => {
    const { accounts, invoices } = generateInvoicingData('acme', { size: 100 });
    expect(accounts.map((r) => r.id)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    expect(invoices.map((r) => r.id)).toEqual(
      Array.from({ length: invoices.length }, (_, i) => i + 1),
    );
    expect(new Set(invoices.map((r) => r.number)).size).toBe(invoices.length);
    const ids = new Set(accounts.map((r) => r.id));
    for (const r of invoices) expect(ids.has(r.accountId)).toBe(true);
  });

  it("keeps features within the credit model's ranges and invoices consistent", () => {
    const { accounts, invoices } = generateInvoicingData('ranges', { size: 500 });
    for (const r of accounts) {
      expect(r.creditLimit).toBeGreaterThanOrEqual(1000);
      expect(r.creditLimit).toBeLessThanOrEqual(100_000);
      expect(Number.isInteger(r.overdueInvoices)).toBe(true);
      expect(r.overdueInvoices).toBeGreaterThanOrEqual(0);
      expect(r.overdueInvoices).toBeLessThanOrEqual(20);
      expect(r.averageDaysLate).toBeGreaterThanOrEqual(0);
      expect(r.averageDaysLate).toBeLessThanOrEqual(90);
      expect(r.country).toMatch(/^[A-Z]{2}$/);
      expect(r.openedAt.getTime()).toBeLessThan(SEED_EPOCH);
    }
    const perAccount = new Map<number, number>();
    for (const r of invoices) {
      perAccount.set(r.accountId, (perAccount.get(r.accountId) ?? 0) + 1);
      expect(r.amount).toBeGreaterThan(0);
      expect(r.currency).toMatch(/^[A-Z]{3}$/);
      expect(['OPEN', 'PAID', 'OVERDUE']).toContain(r.status);
      expect(r.dueAt.getTime()).toBeGreaterThan(r.issuedAt.getTime());
      expect(r.paidAt === null).toBe(r.status !== 'PAID');
      if (r.paidAt !== null)
        expect(r.paidAt.getTime()).toBeGreaterThanOrEqual(r.issuedAt.getTime());
    }
    expect(Math.max(...perAccount.values())).toBeLessThanOrEqual(MAX_INVOICES_PER_ACCOUNT);
    expect(perAccount.size).toBeLessThan(500); // some accounts have no invoice
    expect(new Set(invoices.map((r) => r.status)).size).toBe(3);
  });

  it('rejects nonsensical sizes', () => {
    expect(() => generateInvoicingData('x', { size: -1 })).toThrow(TypeError);
    expect(() => generateInvoicingData('x', { size: 1.5 })).toThrow(TypeError);
  });
});
