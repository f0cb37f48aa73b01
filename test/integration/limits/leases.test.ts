import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DataSource } from '../../../src/backends/data/types.js';
import { concurrencyKey } from '../../../src/store/keys.js';
import { startTestGateway, type TestGateway } from '../../support/gateway.js';
import { createTestSigner, type TestSigner } from '../../support/tokens.js';
import { uniqueTenant } from '../../unit/store/store-contract.js';
import {
  admissionOn,
  closeReplica,
  connectReplica,
  deleteTenantKeys,
  eventually,
  recordingPredictor,
  REDIS_HOST_URL,
  type Replica,
  TWO_FEATURE_MODEL,
  unusedDataSource,
} from '../shared-state/support.js';

// Issue 12 §4 "leases held by slow uploads": twelve slow request bodies on one token held the
// tenant's concurrency leases until Node's request timeout (30 s, as long as the lease TTL),
// so the tenant's next requests were refused. Body reading has its own deadline now, and a
// lease ends with its request however it ends. Real HTTP (raw sockets for the slow bodies),
// real Redis (database 14, unique tenant ids), the lease count read from Redis itself.

const REDIS_URL = `${REDIS_HOST_URL}/14`;
const BODY_TIMEOUT_MS = 400;
const SLOW = 3;

describe('concurrency leases end when their requests end', () => {
  const tenant = uniqueTenant('lease');
  const predictor = recordingPredictor();
  let signer: TestSigner;
  let token: string;
  let dataSource: DataSource;
  let replica: Replica;
  let gateway: TestGateway;
  const sockets = new Set<Socket>();

  beforeAll(async () => {
    signer = await createTestSigner();
    token = await signer.sign({ tenant }, { expiresIn: '1h' });
    dataSource = unusedDataSource();
    replica = await connectReplica(REDIS_URL);
    gateway = await startTestGateway({
      signer,
      dataSource,
      predictor,
      admission: admissionOn(replica.store),
      bodyTimeoutMs: BODY_TIMEOUT_MS,
      tenants: [
        {
          id: tenant,
          data: { strategy: 'row' },
          models: TWO_FEATURE_MODEL,
          limits: { maxConcurrent: SLOW, rateLimit: { perSecond: 1_000, burst: 1_000 } },
        },
      ],
    });
  });

  afterAll(async () => {
    predictor.release();
    for (const socket of sockets) socket.destroy();
    await gateway?.stop();
    if (replica) await deleteTenantKeys(replica.client, [tenant]);
    await closeReplica(replica);
    await (dataSource as { close(): Promise<void> } | undefined)?.close();
  });

  const leases = () => replica.client.zcard(concurrencyKey(tenant));
  const viewer = '{ viewer { tenant { id } } }';

  /** A POST that announces 1000 bytes of body and sends 10 of them, then nothing. */
  async function slowUpload(): Promise<{ socket: Socket; answer: () => string | undefined }> {
    const url = new URL(gateway.url);
    const socket = connect({ host: url.hostname, port: Number(url.port) });
    sockets.add(socket);
    await once(socket, 'connect');
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('error', () => undefined);
    let closed = false;
    socket.once('close', () => (closed = true));
    /** What the gateway answered, once it has closed the connection. */
    const answer = () => (closed ? text : undefined);
    socket.write(
      `POST /graphql HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${token}\r\n` +
        'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"query":"',
    );
    return { socket, answer };
  }

  it('answers a body that does not arrive within server.bodyTimeoutMs with a coded 408 and frees its lease', async () => {
    const uploads = await Promise.all(Array.from({ length: SLOW }, () => slowUpload()));
    // All the tenant's slots are taken by uploads that send nothing more.
    await eventually(async () => expect(await leases()).toBe(SLOW), 5_000);
    expect((await gateway.query(viewer, { token })).status).toBe(429);

    // Each gets its answer and its connection closed, without sending another byte.
    await eventually(() => uploads.every((u) => u.answer() !== undefined), 5_000);
    for (const raw of uploads.map((u) => u.answer() ?? '')) {
      expect(raw).toMatch(/^HTTP\/1\.1 408 /);
      expect(raw.toLowerCase()).toContain('connection: close');
      const body = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)) as {
        errors: { extensions: Record<string, unknown> }[];
      };
      expect(body.errors[0]?.extensions).toMatchObject({
        code: 'BAD_USER_INPUT',
        reason: 'BODY_TIMEOUT',
      });
    }
    expect(await leases()).toBe(0);
    // The tenant's next request is admitted at once.
    expect((await gateway.query(viewer, { token })).status).toBe(200);
  });

  it('frees the lease of an upload whose client goes away mid-body', async () => {
    const uploads = await Promise.all(Array.from({ length: SLOW }, () => slowUpload()));
    await eventually(async () => expect(await leases()).toBe(SLOW), 5_000);
    for (const upload of uploads) upload.socket.destroy();
    await eventually(async () => expect(await leases()).toBe(0), 1_000);
    expect((await gateway.query(viewer, { token })).status).toBe(200);
  });

  it('frees the lease of a request whose client goes away while its backend call is pending', async () => {
    predictor.hold();
    const controllers = Array.from({ length: SLOW }, () => new AbortController());
    const pending = controllers.map((controller) =>
      fetch(`${gateway.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ query: '{ predict(model: "churn", inputs: [[1, 2]]) { score } }' }),
        signal: controller.signal,
      }).catch(() => 'aborted'),
    );
    await eventually(() => expect(predictor.pending()).toBe(SLOW), 5_000);
    expect(await leases()).toBe(SLOW);
    for (const controller of controllers) controller.abort();
    expect(await Promise.all(pending)).toEqual(Array(SLOW).fill('aborted'));
    // The backend calls are still held, but the requests are over: so are their leases.
    await eventually(async () => expect(await leases()).toBe(0), 1_000);
    expect(predictor.pending()).toBe(SLOW);
    expect((await gateway.query(viewer, { token })).status).toBe(200);
    predictor.release();
  });
});
