/** The state shared by the scenarios of one `npm run bench`, and the interleaved-rounds driver. */
import type { SpawnedModelServer } from '../../services/model-server/spawn.js';
import type { BenchDatabase, TestSigner } from './environment.js';
import { type LoadResult, type LoadSpec, runLoad } from './load.js';
import type { BenchSettings } from './report.js';

export interface BenchContext {
  settings: BenchSettings;
  /** Unique to this run: in database, tenant and file names. */
  suffix: string;
  /** Scratch directory of this run (config files, CPU profiles). */
  workDir: string;
  signer: TestSigner;
  db: BenchDatabase;
  /** The tenant whose data is seeded in `db` (schema strategy). */
  dataTenant: string;
  /** Its customer ids, in seed order. */
  customerIds: readonly string[];
  /** The reference model server, started on first use and shared by the scenarios. */
  modelServer(): Promise<SpawnedModelServer>;
  /** Tenants whose Redis keys are deleted at the end. */
  tenants: Set<string>;
  /** Stopped at the end, in reverse order, even when a scenario fails. */
  track<T extends { stop(): Promise<void> }>(process: T): T;
  log(message: string): void;
}

/** One server in a comparison. */
export interface Target {
  name: string;
  /** Server process to sample CPU from. */
  pid: number;
  /** Other processes to sample CPU from (e.g. the model server). */
  otherPids?: Readonly<Record<string, number>>;
  spec: Omit<LoadSpec, 'warmupSeconds' | 'durationSeconds'>;
  /** Runs before each of this target's runs (e.g. resetting counters). */
  before?: () => Promise<void>;
  /** Runs after each run with its result; may add fields to it. */
  after?: (result: LoadResult) => Promise<void>;
}

/**
 * Measures every target `rounds` times, interleaved (A B C, A B C, …) so a slow minute on a
 * shared machine hits every target alike; each run is preceded by a warm-up from the same client
 * process (longer before a target's first round).
 */
export async function interleavedRounds(
  ctx: BenchContext,
  targets: readonly Target[],
  options: { warmedUp?: boolean } = {},
): Promise<Map<string, LoadResult[]>> {
  const results = new Map<string, LoadResult[]>(targets.map((t) => [t.name, []]));
  const { rounds, roundWarmupSeconds, durationSeconds } = ctx.settings;
  const warmupSeconds = options.warmedUp ? roundWarmupSeconds : ctx.settings.warmupSeconds;
  for (let round = 0; round < rounds; round += 1) {
    for (const target of targets) {
      await target.before?.();
      const result = await runLoad(
        {
          ...target.spec,
          warmupSeconds: round === 0 ? warmupSeconds : roundWarmupSeconds,
          durationSeconds,
        },
        target.pid,
        target.otherPids,
      );
      await target.after?.(result);
      results.get(target.name)?.push(result);
      ctx.log(
        `  round ${round + 1}/${rounds} ${target.name}: ${result.okPerSecond.toFixed(0)} ok/s, ` +
          `p50 ${result.latencyMs.p50.toFixed(2)} ms, p99 ${result.latencyMs.p99.toFixed(2)} ms, ` +
          `server ${(result.serverCores ?? Number.NaN).toFixed(2)} cores, client ` +
          `${(result.clientCpuSeconds / result.seconds).toFixed(2)} cores` +
          Object.entries(result.otherCores ?? {})
            .map(([name, cores]) => `, ${name} ${cores.toFixed(2)} cores`)
            .join('') +
          (result.non2xx + result.graphqlErrors + result.errors > 0
            ? `, FAILURES non2xx=${result.non2xx} graphqlErrors=${result.graphqlErrors} errors=${result.errors} ${result.firstError ?? ''}`
            : ''),
      );
    }
  }
  return results;
}
