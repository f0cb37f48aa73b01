import { GatewayError } from '../../errors.js';
import type { Channel, CreateOrderInput, ListCustomersArgs, Segment } from './types.js';

export const SEGMENTS: readonly Segment[] = ['SMB', 'MID_MARKET', 'ENTERPRISE'];
export const CHANNELS: readonly Channel[] = ['WEB', 'MOBILE', 'STORE', 'PHONE'];
/** Largest `first` a page or a per-customer order list may ask for. */
export const MAX_FIRST = 1000;
/** Ids are opaque, but no id we issue is anywhere near this long. */
export const MAX_ID_LENGTH = 128;
export const MAX_ORDER_AMOUNT = 1e9;

function badInput(field: string, expected: string, found: unknown): GatewayError {
  return new GatewayError(
    'BAD_USER_INPUT',
    `${field} must be ${expected}; found ${JSON.stringify(found) ?? String(found)}`,
    { extensions: { field } },
  );
}

function isId(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_ID_LENGTH;
}

/** Checks the keys of a batch; the batch fails as a whole if one key is not an id. */
export function checkIds(field: string, ids: readonly unknown[]): string[] {
  if (!Array.isArray(ids)) throw badInput(field, 'a list of ids', ids);
  for (const id of ids) {
    if (!isId(id)) throw badInput(field, `ids of 1..${MAX_ID_LENGTH} characters`, id);
  }
  // Duplicates would only make the statement bigger; callers map rows back by id.
  return [...new Set(ids as string[])];
}

export function checkFirst(field: string, first: unknown): number {
  if (typeof first !== 'number' || !Number.isInteger(first) || first < 0 || first > MAX_FIRST) {
    throw badInput(field, `an integer from 0 to ${MAX_FIRST}`, first);
  }
  return first;
}

export function checkListCustomersArgs(args: ListCustomersArgs): ListCustomersArgs {
  if (typeof args !== 'object' || args === null) throw badInput('args', 'an object', args);
  const first = checkFirst('first', args.first);
  if (args.afterId !== undefined && !isId(args.afterId)) {
    throw badInput('after', `an id of 1..${MAX_ID_LENGTH} characters`, args.afterId);
  }
  if (args.segment !== undefined && !SEGMENTS.includes(args.segment)) {
    throw badInput('segment', `one of ${SEGMENTS.join(', ')}`, args.segment);
  }
  return { first, afterId: args.afterId, segment: args.segment };
}

function checkInt(field: string, value: unknown, min: number, max: number): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw badInput(field, `an integer from ${min} to ${max}`, value);
  }
}

/** Validates a new order before any SQL runs, so bad input never reaches the database. */
export function checkCreateOrderInput(input: CreateOrderInput): CreateOrderInput {
  if (typeof input !== 'object' || input === null) throw badInput('input', 'an object', input);
  if (!isId(input.customerId)) {
    throw badInput('customerId', `an id of 1..${MAX_ID_LENGTH} characters`, input.customerId);
  }
  const { amount } = input;
  if (
    typeof amount !== 'number' ||
    !Number.isFinite(amount) ||
    amount <= 0 ||
    amount > MAX_ORDER_AMOUNT
  ) {
    throw badInput('amount', `a number > 0 and ≤ ${MAX_ORDER_AMOUNT}`, amount);
  }
  if (typeof input.currency !== 'string' || !/^[A-Z]{3}$/.test(input.currency)) {
    throw badInput('currency', 'an ISO 4217 code of three capital letters', input.currency);
  }
  if (!CHANNELS.includes(input.channel)) {
    throw badInput('channel', `one of ${CHANNELS.join(', ')}`, input.channel);
  }
  checkInt('itemCount', input.itemCount, 1, 1000);
  if (typeof input.isInternational !== 'boolean') {
    throw badInput('isInternational', 'a boolean', input.isInternational);
  }
  checkInt('paymentAttempts', input.paymentAttempts, 1, 100);
  checkInt('hourOfDay', input.hourOfDay, 0, 23);
  return input;
}
