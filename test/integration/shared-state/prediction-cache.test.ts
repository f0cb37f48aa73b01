import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DataSource } from '../../../src/backends/data/types.js';
import { inputHash } from '../../../src/sources/inference/prediction-loaders.js';
import { predictionKey } from '../../../src/store/keys.js';
import { startTestGateway, type TestGateway } from '../../support/gateway.js';
import { createTestSigner, type TestSigner } from '../../support/tokens.js';
import { uniqueTenant } from '../../unit/store/store-contract.js';
import {
  closeReplica,
  connectReplica,
  deleteTenantKeys,
  eventually,
  recordingPredictor,
  REDIS_HOST_URL,
  type Replica,
  tenantKeys,
  TWO_FEATURE_MODEL,
  unusedDataSource,
} from './support.js';

const REDIS_URL = `${REDIS_HOST_URL}/14`;

describe('prediction cache in Redis, through two gateways', () => {
  const acme = uniqueTenant('pc-acme');
  const globex = uniqueTenant('pc-globex');
  const predictor = recordingPredictor();
  let signer: TestSigner;
  let dataSource: DataSource;
  const replicas: Replica[] = [];
  const gateways: TestGateway[] = [];

  beforeAll(async () => {
    signer = await createTestSigner();
    dataSource = unusedDataSource();
    for (let i = 0; i < 2; i += 1) {
      const replica = await connectReplica(REDIS_URL);
      replicas.push(replica);
      gateways.push(
        await startTestGateway({
          signer,
          dataSource,
          predictor,
          predictionCache: replica.store,
          cacheTtlSeconds: 60,
          // The same model, version and input for both tenants: only the tenant differs.
          tenants: [acme, globex].map((id) => ({
            id,
            data: { strategy: 'row' as const },
            models: TWO_FEATURE_MODEL,
          })),
        }),
      );
    }
  });

  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.stop()));
    if (replicas[0]) await deleteTenantKeys(replicas[0].client, [acme, globex]);
    await Promise.all(replicas.map((r) => closeReplica(r)));
    await dataSource?.close();
  });

  it('keeps one entry per tenant for the same input, shared by the replicas, never crossed', async () => {
    const [a, b] = gateways as [TestGateway, TestGateway];
    const redis = replicas[0]!.client;
    const row = [0.25, 0.75];
    const query = `{ predict(model: "churn", inputs: [[${row.join(', ')}]]) { score cached } }`;
    const acmeToken = await signer.sign({ tenant: acme });
    const globexToken = await signer.sign({ tenant: globex });
    const acmeKey = predictionKey(acme, 'churn', '1', inputHash(row));
    const globexKey = predictionKey(globex, 'churn', '1', inputHash(row));
    expect(acmeKey).not.toBe(globexKey);

    // acme, replica A: a miss, scored by the model, written back.
    const first = await a.query(query, { token: acmeToken });
    expect(first.body).toEqual({ data: { predict: [{ score: 0.5, cached: false }] } });
    expect(predictor.calls).toEqual([{ tenantId: acme, rows: [row] }]);
    await eventually(async () => expect(await redis.get(acmeKey)).not.toBeNull());

    // acme, replica B: a hit from the shared cache; the model is not called.
    const second = await b.query(query, { token: acmeToken });
    expect(second.body).toEqual({ data: { predict: [{ score: 0.5, cached: true }] } });
    expect(predictor.calls).toHaveLength(1);

    // globex, same input: no hit on acme's entry; its own miss, its own key.
    const third = await a.query(query, { token: globexToken });
    expect(third.body).toEqual({ data: { predict: [{ score: 0.5, cached: false }] } });
    expect(predictor.calls.map((c) => c.tenantId)).toEqual([acme, globex]);
    await eventually(async () => expect(await redis.get(globexKey)).not.toBeNull());
    const fourth = await b.query(query, { token: globexToken });
    expect(fourth.body).toEqual({ data: { predict: [{ score: 0.5, cached: true }] } });
    expect(predictor.calls).toHaveLength(2);

    // Two keys, each under its own tenant's hash tag, with the configured TTL.
    expect(await tenantKeys(redis, acme)).toEqual([acmeKey]);
    expect(await tenantKeys(redis, globex)).toEqual([globexKey]);
    for (const key of [acmeKey, globexKey]) {
      expect(JSON.parse((await redis.get(key)) ?? '')).toEqual({ s: 0.5, v: '1' });
      const ttl = await redis.ttl(key);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(60);
    }
  });

  it('with a TTL of 0 neither reads nor writes the cache, even when an entry is there', async () => {
    const redis = replicas[0]!.client;
    const off = await startTestGateway({
      signer,
      dataSource,
      predictor,
      predictionCache: replicas[0]!.store,
      cacheTtlSeconds: 0,
      tenants: [{ id: acme, data: { strategy: 'row' as const }, models: TWO_FEATURE_MODEL }],
    });
    try {
      const row = [0.125, 0.875];
      const key = predictionKey(acme, 'churn', '1', inputHash(row));
      // An entry as a replica with a TTL would have written it.
      await redis.set(key, JSON.stringify({ s: 0.9, v: '1' }), 'EX', 60);
      const before = predictor.calls.length;
      const answer = await off.query(
        `{ predict(model: "churn", inputs: [[${row.join(', ')}]]) { score cached } }`,
        { token: await signer.sign({ tenant: acme }) },
      );
      expect(answer.body).toEqual({ data: { predict: [{ score: 0.5, cached: false }] } });
      expect(predictor.calls.slice(before)).toEqual([{ tenantId: acme, rows: [row] }]);
      expect(await redis.pttl(key)).toBeGreaterThan(0);
      expect(JSON.parse((await redis.get(key))!)).toEqual({ s: 0.9, v: '1' });
    } finally {
      await off.stop();
    }
  });
});
