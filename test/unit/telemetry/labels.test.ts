import { describe, expect, it } from 'vitest';
import { createLabelBound, OVERFLOW_LABEL } from '../../../src/telemetry/labels.js';

describe('createLabelBound', () => {
  it('keeps the first `max` values and maps every later one to `other`', () => {
    const bound = createLabelBound(2);
    expect(bound('acme')).toBe('acme');
    expect(bound('globex')).toBe('globex');
    expect(bound('initech')).toBe(OVERFLOW_LABEL);
    // A value that got a label keeps it; one that did not never gets one later.
    expect(bound('acme')).toBe('acme');
    expect(bound('initech')).toBe(OVERFLOW_LABEL);
    expect(bound.size).toBe(2);
  });

  it('holds at most `max` values whatever the traffic', () => {
    const bound = createLabelBound(10);
    const seen = new Set<string>();
    for (let i = 0; i < 5_000; i++) seen.add(bound(`tenant-${i}`));
    expect(seen.size).toBe(11);
    expect(bound.size).toBe(10);
  });

  it('max 0 aggregates everything, and a bad max is a caller error', () => {
    expect(createLabelBound(0)('acme')).toBe('other');
    expect(() => createLabelBound(-1)).toThrow(TypeError);
    expect(() => createLabelBound(1.5)).toThrow(/non-negative integer, got 1.5/);
  });
});
