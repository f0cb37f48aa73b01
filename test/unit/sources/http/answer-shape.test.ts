import { describe, expect, it } from 'vitest';
import type { HttpBinding } from '../../../../src/sources/bindings.js';
import { checkAnswer } from '../../../../src/sources/http/answer-shape.js';
import { demoSchema } from '../../../support/demo.js';

const tickets = demoSchema().bindings.fields.find(
  (f): f is HttpBinding => f.kind === 'http' && f.field === 'tickets',
)!;
const ticket = {
  id: 'T1',
  subject: 's',
  status: 'OPEN',
  priority: 'LOW',
  openedAt: '2026-01-01T00:00:00Z',
};

describe('service answers checked against the field type', () => {
  it('accepts a list of well-formed tickets, extra fields ignored', () => {
    expect(checkAnswer([ticket, { ...ticket, extra: 1 }], tickets.answer, '')).toBeUndefined();
    expect(checkAnswer([], tickets.answer, '')).toBeUndefined();
    // Customer.tickets is nullable ([Ticket!]): no list at all is an answer too; its items are not.
    expect(checkAnswer(null, tickets.answer, '')).toBeUndefined();
    expect(checkAnswer(null, { ...tickets.answer, nonNull: true }, '')).toBe(
      'the answer is missing',
    );
  });

  it.each([
    [{ items: [] }, 'the answer is not a list'],
    [[null], '[0] is missing'],
    [[{ ...ticket, status: 'CLOSED' }], '[0].status is not one of its enum values'],
    [[{ ...ticket, id: { $ne: 1 } }], '[0].id is not a valid ID'],
    [[{ ...ticket, subject: undefined }], '[0].subject is missing'],
    [['T1'], '[0] is not an object'],
  ])('refuses %j: %s', (value, problem) => {
    expect(checkAnswer(value, tickets.answer, '')).toBe(problem);
  });
});
