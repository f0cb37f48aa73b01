/**
 * Scenario 9 — inference transport. One model server, infer calls of 200 rows × 5 FP32
 * features, sent as the gateway's OIP client sends them: JSON numbers (the default), and the
 * binary tensor data extension (`inference.backends.<name>.binaryTensors`: a JSON header, then
 * the raw little-endian bytes). Both bodies are built by `createOipClient` itself (captured from
 * its wire, so the bench measures exactly what the gateway sends) and must score the same.
 * Figures: calls/s, the model server's CPU per call, and request bytes.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createOipClient } from '../../src/backends/inference/oip-client.js';
import { type BenchContext, interleavedRounds, type Target } from '../lib/context.js';
import { figure, type ScenarioReport } from '../lib/report.js';
import { median } from '../lib/stats.js';
import { roundRatios, summarize } from './overhead.js';

const ROWS = 200;
const FEATURES = 5;
const MODEL = 'churn';
const VERSION = '2';
const CONNECTIONS = 16;

interface Captured {
  headers: Record<string, string>;
  body: Buffer;
}

/** The request the OIP client sends for `rows`, captured by a server that answers nothing. */
async function capture(binaryTensors: boolean, rows: number[][]): Promise<Captured> {
  let seen: Captured | undefined;
  const server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const headers: Record<string, string> = {};
      for (const name of ['content-type', 'inference-header-content-length']) {
        const value = req.headers[name];
        if (typeof value === 'string') headers[name] = value;
      }
      seen = { headers, body: Buffer.concat(chunks) };
      res.writeHead(503).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const client = createOipClient({
    baseUrl: `http://127.0.0.1:${port}`,
    timeoutMs: 2_000,
    connections: 1,
    binaryTensors,
    retry: { maxAttempts: 1 },
  });
  await client
    .infer({ model: MODEL, version: VERSION, inputs: rows, featureCount: FEATURES })
    .catch(() => undefined);
  await client.close();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (!seen) throw new Error('the OIP client sent nothing');
  return seen;
}

export async function binaryTensorsScenario(ctx: BenchContext): Promise<ScenarioReport> {
  const modelServer = await ctx.modelServer();
  const pid = modelServer.process.pid;
  if (pid === undefined) throw new Error('model server: no pid');
  const rows = Array.from({ length: ROWS }, (_, i) =>
    Array.from({ length: FEATURES }, (_, f) => Math.round(Math.sin(i * 7 + f) * 1000) / 10),
  );
  const json = await capture(false, rows);
  const binary = await capture(true, rows);
  const url = `${modelServer.url}/v2/models/${MODEL}/versions/${VERSION}/infer`;

  // Same scores either way, checked on the real server before timing.
  const [a, b] = await Promise.all(
    [json, binary].map(async (c) => {
      const res = await fetch(url, { method: 'POST', headers: c.headers, body: c.body });
      if (res.status !== 200) throw new Error(`infer answered ${res.status}: ${await res.text()}`);
      return ((await res.json()) as { outputs: { data: number[] }[] }).outputs[0]?.data;
    }),
  );
  if (JSON.stringify(a) !== JSON.stringify(b) || a?.length !== ROWS) {
    throw new Error('binary and JSON requests scored differently');
  }

  const target = (name: string, c: Captured): Target => ({
    name,
    pid,
    spec: {
      url,
      headers: c.headers,
      bodies: [c.body.toString('base64')],
      bodyEncoding: 'base64',
      connections: CONNECTIONS,
      timeoutSeconds: 30,
    },
  });
  const results = await interleavedRounds(ctx, [target('json', json), target('binary', binary)]);
  const runs = (name: string) => results.get(name) ?? [];
  const medians = Object.fromEntries([...results].map(([name, r]) => [name, summarize(r)]));
  const perCall = (name: string) =>
    median(runs(name).map((r) => (r.serverCores ?? Number.NaN) / r.okPerSecond));
  const figures = [
    figure(
      `calls/s of ${ROWS} × ${FEATURES}, binary / JSON`,
      median(roundRatios(runs('binary'), runs('json'), (r) => r.okPerSecond)),
      '×',
    ),
    figure('model server CPU per call, binary / JSON', perCall('binary') / perCall('json'), '×'),
    figure('request bytes, binary / JSON', binary.body.length, ` / ${json.body.length}`),
    figure(
      'p99 latency (ms), binary / JSON',
      medians.binary?.p99Ms ?? Number.NaN,
      ` / ${(medians.json?.p99Ms ?? Number.NaN).toFixed(1)}`,
    ),
  ];
  return {
    scenario: 'binary-tensors',
    title: '9. Inference transport (binary tensor data vs JSON)',
    figures,
    data: { medians, rounds: Object.fromEntries(results) },
    notes: [
      `bodies as createOipClient sends them (binaryTensors off / on); ${CONNECTIONS} connections straight to the model server (${MODEL} v${VERSION}); both scored the ${ROWS} rows identically before timing`,
      `calls/s (median): json ${Math.round(medians.json?.okPerSecond ?? 0)}, binary ${Math.round(medians.binary?.okPerSecond ?? 0)}`,
    ],
  };
}
