/**
 * `npm run bench` — the load scenarios of issues 7, 10 and 11, each against the real components on loopback:
 * the gateway as a separate process started from a config file (as in production), the load
 * generator (autocannon) in another process, several rounds, medians, and every headline figure
 * a ratio against a baseline measured in the same run.
 *
 *   npm run bench [-- --only overhead,aggregation,micro-batching,tenant-scale,execution-engine,data-plane,
 *                              tenant-services,workers,binary-tensors,peers]
 *                 [--rounds 3] [--duration 5] [--warmup 3] [--round-warmup 1] [--quick]
 *                 [--keep]   (keep the scratch directory: config files and .cpuprofile files)
 *                 [--profile] (data-plane: profile both sides even when no target is missed;
 *                              tenant-services: profile Atrium; peers: profile Atrium on
 *                              every query, not only where it misses a target)
 *
 * Writes bench/results/<scenario>-<timestamp>.json per scenario and bench/results/latest.json,
 * refreshes the generated table in BENCHMARKS.md after a full run, and prints each figure beside
 * its target. Exit code 0 whether targets are met or not (benchmarks report, tests assert);
 * 1 only if a scenario could not run at all.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { generateTenantData } from '../examples/demo/seed.js';
import { spawnModelServer, type SpawnedModelServer } from '../services/model-server/spawn.js';
import type { BenchContext } from './lib/context.js';
import {
  createBenchDatabase,
  createTestSigner,
  deleteRedisKeys,
  machineInfo,
  runSuffix,
  seedBenchTenant,
} from './lib/environment.js';
import {
  type BenchSettings,
  markdownTable,
  printReport,
  RESULTS_DIR,
  type RunRecord,
  type ScenarioReport,
  timestamp,
  updateBenchmarksMd,
  writeScenarioResult,
} from './lib/report.js';
import { aggregationScenario } from './scenarios/aggregation.js';
import { binaryTensorsScenario } from './scenarios/binary-tensors.js';
import { dataPlaneScenario } from './scenarios/data-plane.js';
import { executionEngineScenario } from './scenarios/execution-engine.js';
import { microBatchingScenario } from './scenarios/micro-batching.js';
import { overheadScenario } from './scenarios/overhead.js';
import { peersScenario } from './scenarios/peers.js';
import { tenantScaleScenario } from './scenarios/tenant-scale.js';
import { tenantServicesScenario } from './scenarios/tenant-services.js';
import { workersScenario } from './scenarios/workers.js';

const SCENARIOS: Record<string, (ctx: BenchContext) => Promise<ScenarioReport>> = {
  overhead: overheadScenario,
  aggregation: aggregationScenario,
  'micro-batching': microBatchingScenario,
  'tenant-scale': tenantScaleScenario,
  'execution-engine': executionEngineScenario,
  'data-plane': dataPlaneScenario,
  'tenant-services': tenantServicesScenario,
  workers: workersScenario,
  'binary-tensors': binaryTensorsScenario,
  peers: peersScenario,
};
/** Customers seeded for the data tenant: enough for N = 200 and for 64 distinct concurrent ids. */
const SEED_CUSTOMERS = 1_000;

const { values: args } = parseArgs({
  options: {
    only: { type: 'string' },
    rounds: { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    'round-warmup': { type: 'string' },
    quick: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
  },
});

function positive(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0)
    throw new TypeError(`--${name} must be a positive number; got ${value}`);
  return n;
}

const settings: BenchSettings = {
  rounds: Math.round(positive('rounds', args.rounds, args.quick ? 1 : 3)),
  warmupSeconds: positive('warmup', args.warmup, args.quick ? 1 : 3),
  roundWarmupSeconds: positive('round-warmup', args['round-warmup'], 1),
  durationSeconds: positive('duration', args.duration, args.quick ? 2 : 5),
  profile: args.profile,
};
const selected = args.only ? args.only.split(',').map((s) => s.trim()) : Object.keys(SCENARIOS);
for (const name of selected) {
  if (!SCENARIOS[name]) {
    throw new TypeError(`unknown scenario "${name}"; one of ${Object.keys(SCENARIOS).join(', ')}`);
  }
}

const started = new Date();
const t0 = performance.now();
const log = (message: string) =>
  console.log(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${message}`);

const machine = machineInfo();
const suffix = runSuffix();
const workDir = await mkdtemp(join(tmpdir(), 'atrium-bench-'));
const tracked: { stop(): Promise<void> }[] = [];
const tenants = new Set<string>();
let modelServer: Promise<SpawnedModelServer> | undefined;
let db: Awaited<ReturnType<typeof createBenchDatabase>> | undefined;

let cleaning: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const p of tracked.splice(0).reverse()) await p.stop().catch(() => {});
    if (modelServer) await (await modelServer.catch(() => undefined))?.stop();
    await db?.drop().catch((e: unknown) => console.error('could not drop the bench database:', e));
    await deleteRedisKeys([...tenants]).catch((e: unknown) =>
      console.error('could not delete the bench Redis keys:', e),
    );
    if (args.keep) console.log(`kept ${workDir} (config files, CPU profiles)`);
    else await rm(workDir, { recursive: true, force: true });
  })();
  return cleaning;
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });
}

const reports: ScenarioReport[] = [];
const files: Record<string, string> = {};
let failed = 0;
const stamp = timestamp(started);
const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
try {
  log(
    `machine: ${machine.nproc} × ${machine.cpuModel}, ${machine.memoryGiB} GiB, Node.js ${machine.node}, load ${machine.loadAverage.start}`,
  );
  log(`settings: ${JSON.stringify(settings)}; scenarios: ${selected.join(', ')}`);
  const signer = await createTestSigner('bench-key');
  db = await createBenchDatabase(suffix);
  const dataTenant = `bench-${suffix}`;
  tenants.add(dataTenant);
  const seeded = await seedBenchTenant(db.url, dataTenant, SEED_CUSTOMERS);
  log(
    `database ${db.name}: tenant ${dataTenant} seeded (${seeded.tables?.customers?.rows ?? 0} customers, ${seeded.tables?.orders?.rows ?? 0} orders)`,
  );
  const ctx: BenchContext = {
    settings,
    suffix,
    workDir,
    signer,
    db,
    dataTenant,
    customerIds: generateTenantData(dataTenant, { size: SEED_CUSTOMERS }).customers.map(
      (c) => c.id,
    ),
    modelServer: () => (modelServer ??= spawnModelServer({ port: 0 })),
    tenants,
    track: (p) => {
      tracked.push(p);
      return p;
    },
    log,
  };
  await mkdir(RESULTS_DIR, { recursive: true });
  for (const name of selected) {
    log(`scenario ${name}`);
    const scenarioStart = performance.now();
    let report: ScenarioReport;
    try {
      report = await (SCENARIOS[name] as (ctx: BenchContext) => Promise<ScenarioReport>)(ctx);
    } catch (error) {
      failed += 1;
      console.error(`scenario ${name} failed:`, error);
      report = {
        scenario: name,
        title: name,
        figures: [],
        data: {},
        notes: [`could not run: ${(error as Error).message}`],
      };
    } finally {
      // Each scenario's processes end with it, so the next one has the machine to itself.
      for (const p of tracked.splice(0).reverse()) await p.stop().catch(() => {});
    }
    report.data.elapsedSeconds = Math.round((performance.now() - scenarioStart) / 1000);
    reports.push(report);
    printReport(report);
    const runInfo = { startedAt: started.toISOString(), machine, settings, command };
    files[name] = await writeScenarioResult(runInfo, report, stamp);
  }
} finally {
  await cleanup();
}

machine.loadAverage.end = loadavg()[0] ?? Number.NaN;
const run: RunRecord = {
  startedAt: started.toISOString(),
  finishedAt: new Date().toISOString(),
  durationSeconds: Math.round((performance.now() - t0) / 1000),
  machine,
  settings,
  command,
};
await writeFile(
  join(RESULTS_DIR, 'latest.json'),
  `${JSON.stringify(
    {
      ...run,
      scenarios: reports.map((r) => ({
        scenario: r.scenario,
        title: r.title,
        file: files[r.scenario]?.slice(RESULTS_DIR.length + 1),
        figures: r.figures,
        notes: r.notes,
      })),
    },
    null,
    2,
  )}\n`,
);
const all = selected.length === Object.keys(SCENARIOS).length;
if (all && (await updateBenchmarksMd(markdownTable(run, reports))))
  log('BENCHMARKS.md table updated');
log(`done in ${run.durationSeconds} s; results in bench/results/ (latest.json)`);
process.exitCode = failed > 0 ? 1 : 0;
