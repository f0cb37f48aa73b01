// One closed-loop load run, in its own process so that the server under test has its event loop
// (and, on a 2-core machine, a core) to itself. Driven by autocannon; every response's latency is
// also recorded here at full resolution, because autocannon's own histogram has 1 ms buckets and
// the p99 comparisons of `npm run bench` need finer steps than that.
//
// Input (stdin, JSON): { url, method, headers, bodies: string[], bodyEncoding?: 'base64',
//   connections, warmupSeconds,
//   durationSeconds, timeoutSeconds, amount? }. With `amount`, exactly that many requests are
//   sent and all of them answered (no request is cut off at the end, unlike a timed run), so
//   server-side counters divide exactly; used for counting, not for throughput. Bodies are sent in turn across all connections, so
//   concurrent requests carry different bodies (e.g. different customer ids).
// Output (stdout, JSON): see `summary` below.
import autocannon from 'autocannon';

let input = '';
for await (const chunk of process.stdin) input += chunk;
const spec = JSON.parse(input);

function percentile(sorted, p) {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

function run(seconds, record, amount) {
  let next = 0;
  const latencies = [];
  let firstMismatch;
  const bodies =
    spec.bodyEncoding === 'base64' ? spec.bodies.map((b) => Buffer.from(b, 'base64')) : spec.bodies;
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: spec.url,
        connections: spec.connections,
        pipelining: 1,
        ...(amount ? { amount } : { duration: seconds }),
        timeout: spec.timeoutSeconds ?? 10,
        // A GraphQL answer with `errors` is a failure even with HTTP 200 (partial results).
        verifyBody: (body) => {
          const ok = !body.includes('"errors"');
          if (!ok && firstMismatch === undefined) firstMismatch = body.slice(0, 500);
          return ok;
        },
        requests: [
          {
            method: spec.method ?? 'POST',
            headers: spec.headers ?? {},
            setupRequest: (request) => {
              const body = bodies[next % bodies.length];
              next += 1;
              return { ...request, body };
            },
          },
        ],
      },
      (error, result) => (error ? reject(error) : resolve({ result, latencies, firstMismatch })),
    );
    if (record) {
      instance.on('response', (_client, status, _bytes, ms) => {
        if (status >= 200 && status < 300) latencies.push(ms);
      });
    }
  });
}

const warmup = spec.warmupSeconds > 0 ? (await run(spec.warmupSeconds, false)).result : undefined;
// Tells the parent the measured part starts now (it samples the server's CPU time here).
process.stderr.write('measure\n');
const cpuBefore = process.cpuUsage();
const { result, latencies, firstMismatch } = await run(spec.durationSeconds, true, spec.amount);
const cpu = process.cpuUsage(cpuBefore);
latencies.sort((a, b) => a - b);
const mismatches = result.mismatches ?? 0;
// 2xx answers without GraphQL errors: the requests that did what was asked.
const good = result['2xx'] - mismatches;
const summary = {
  seconds: result.duration,
  connections: spec.connections,
  // Sent includes the requests still in flight when the run stopped: the server answers those
  // too, so server-side counters are divided by requests sent.
  requests: result.requests.sent,
  completed: result['2xx'] + result.non2xx,
  ok: good,
  okPerSecond: good / result.duration,
  non2xx: result.non2xx,
  graphqlErrors: mismatches,
  errors: result.errors,
  timeouts: result.timeouts,
  firstError: firstMismatch,
  latencyMs: {
    mean: latencies.reduce((a, b) => a + b, 0) / Math.max(1, latencies.length),
    p50: percentile(latencies, 50),
    p90: percentile(latencies, 90),
    p99: percentile(latencies, 99),
    max: latencies[latencies.length - 1] ?? Number.NaN,
  },
  clientCpuSeconds: (cpu.user + cpu.system) / 1e6,
  // Answers during the warm-up, for counters on the server side that cannot be reset between
  // warm-up and measurement (statements per query, infer calls per prediction).
  warmupSent: warmup ? warmup.requests.sent : 0,
  warmupCompleted: warmup ? warmup['2xx'] + warmup.non2xx : 0,
  warmupOk: warmup ? warmup['2xx'] - (warmup.mismatches ?? 0) : 0,
};
process.stdout.write(JSON.stringify(summary));
