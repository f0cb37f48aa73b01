import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, requestLogger } from '../../../src/telemetry/logger.js';

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  return { lines, logger: createLogger({ level: 'info', destination }) };
}

describe('logger', () => {
  it('writes one JSON object per line with the service name', () => {
    const { lines, logger } = capture();
    logger.info({ tenant: 'acme' }, 'hello');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({
      service: 'atrium',
      tenant: 'acme',
      msg: 'hello',
    });
  });

  it('censors tokens, cookies and GraphQL variables that slip into a log object', () => {
    const { lines, logger } = capture();
    logger.info(
      {
        authorization: 'Bearer secret-token',
        headers: { authorization: 'Bearer secret-token', cookie: 'sid=secret' },
        req: { headers: { authorization: 'Bearer secret-token' } },
        body: { variables: { email: 'jane@example.com' } },
        variables: { name: 'Jane Doe' },
      },
      'oops',
    );
    const text = lines.join('\n');
    expect(text).not.toContain('secret');
    expect(text).not.toContain('jane@example.com');
    expect(text).not.toContain('Jane Doe');
    expect(JSON.parse(lines[0]!).authorization).toBe('[redacted]');
  });

  it('the request logger still censors a top-level token, cookie or variables field', () => {
    const { lines, logger } = capture();
    requestLogger(logger).info(
      { token: 'secret-token', cookie: 'sid=secret', variables: { email: 'jane@example.com' } },
      'request',
    );
    const line = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(line).toMatchObject({
      service: 'atrium',
      token: '[redacted]',
      cookie: '[redacted]',
      variables: '[redacted]',
    });
    expect(lines[0]).not.toContain('secret');
    // The gateway's own logger keeps the full backstop after a request logger was made from it.
    logger.info({ headers: { authorization: 'Bearer secret-token' } }, 'oops');
    expect(lines[1]).not.toContain('secret');
  });
});
