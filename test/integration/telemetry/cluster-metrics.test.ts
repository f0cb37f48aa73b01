import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { sample } from './stack.js';

const FIXTURE = fileURLToPath(new URL('./cluster-fixture.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

let child: ChildProcess | undefined;

afterAll(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((resolve) => child!.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }
});

function metricsUrl(process: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`no metrics URL in 20 s: ${err}`)), 20_000);
    process.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /metrics (http:\/\/\S+)/.exec(out);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    process.stderr?.on('data', (chunk: Buffer) => (err += chunk.toString()));
    process.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`cluster fixture exited with ${code}: ${err}`));
    });
  });
}

describe('metrics under node:cluster', () => {
  it('the primary serves the sum of every worker’s registry', async () => {
    child = spawn(process.execPath, ['--import', 'tsx', FIXTURE], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const url = await metricsUrl(child);
    const response = await fetch(url);
    expect(response.status).toBe(200);
    const body = await response.text();
    // Each worker answered one acme request: the scrape shows both.
    expect(
      sample(body, 'atrium_graphql_requests_total{tenant="acme",operation="Q",outcome="ok"}'),
    ).toBe(2);
    const workers = [...body.matchAll(/tenant="(worker-\d+)"/g)].map((m) => m[1]);
    expect(new Set(workers).size).toBe(2);
    expect(sample(body, 'atrium_graphql_requests_in_flight')).toBe(0);
  });
});
