/**
 * Summarises a V8 CPU profile (`node --cpu-prof`): self time by area (package, src/ folder,
 * Node.js internals, GC) and the top frames, over the part of the run that was measured.
 */
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { BenchContext, Target } from './context.js';
import { runLoad } from './load.js';
import { type AtriumProcessOptions, ROOT, startAtrium } from './processes.js';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  file: string;
  /** Sampled milliseconds in the window, idle included. */
  windowMs: number;
  /** Share of the window the thread was idle (waiting for I/O). */
  idlePercent: number;
  /** Self time by area, as a share of the busy (non-idle) time. */
  areas: { area: string; percent: number }[];
  /** Top frames by self time, as a share of the busy time. */
  frames: { frame: string; percent: number }[];
}

function shortUrl(url: string): string {
  const local = url.replace(/^file:\/\//, '');
  if (local.startsWith(ROOT)) {
    // A checkout of another commit (bench/lib/checkout.ts) reads like this one: src/…
    return local
      .slice(ROOT.length)
      .replace(/^\//, '')
      .replace(/^\.atrium\/bench\/[^/]+\//, '');
  }
  return url;
}

function areaOf(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (url === '') {
    if (functionName === '(garbage collector)') return 'GC';
    if (functionName === '(idle)') return '(idle)';
    if (functionName === '(program)') return '(program: native, unattributed)';
    return `native: ${functionName || '(anonymous)'}`;
  }
  if (url.startsWith('node:')) {
    const parts = url.slice(5).split('/');
    return `node:${parts[0] === 'internal' ? `internal/${parts[1] ?? ''}` : (parts[0] ?? '')}`;
  }
  const path = shortUrl(url);
  const modules = path.lastIndexOf('node_modules/');
  if (modules >= 0) {
    const rest = path.slice(modules + 'node_modules/'.length).split('/');
    return rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1] ?? ''}` : (rest[0] ?? path);
  }
  const parts = path.split('/');
  if (parts[0] === 'src' && parts.length > 2) return `src/${parts[1] ?? ''}`;
  return path;
}

/**
 * Reads the newest .cpuprofile in `dir` and summarises samples taken `skipMs` or more after the
 * profile started (the start-up of the process is not what a load profile is about).
 */
export async function summarizeProfile(dir: string, skipMs = 0, top = 15): Promise<ProfileSummary> {
  // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile: thread 0 is the main thread (others are
  // workers, e.g. the ESM loader thread of tsx).
  const files = (await readdir(dir)).filter((f) => /\.\d+\.0\.\d+\.cpuprofile$/.test(f)).sort();
  const file = files[files.length - 1];
  if (!file) throw new Error(`no .cpuprofile in ${dir}`);
  const profile = JSON.parse(await readFile(join(dir, file), 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const selfByNode = new Map<number, number>();
  let elapsed = 0;
  let windowUs = 0;
  for (let i = 0; i < profile.samples.length; i += 1) {
    const delta = profile.timeDeltas[i] ?? 0;
    elapsed += delta;
    if (elapsed / 1000 < skipMs) continue;
    windowUs += delta;
    const id = profile.samples[i] as number;
    selfByNode.set(id, (selfByNode.get(id) ?? 0) + delta);
  }
  const areas = new Map<string, number>();
  const frames = new Map<string, number>();
  let idleUs = 0;
  for (const [id, us] of selfByNode) {
    const frame = byId.get(id);
    if (!frame) continue;
    const area = areaOf(frame);
    if (area === '(idle)') {
      idleUs += us;
      continue;
    }
    areas.set(area, (areas.get(area) ?? 0) + us);
    const where = frame.url ? ` ${shortUrl(frame.url)}:${frame.lineNumber + 1}` : '';
    const key = `${frame.functionName || '(anonymous)'}${where}`;
    frames.set(key, (frames.get(key) ?? 0) + us);
  }
  const busy = Math.max(1, windowUs - idleUs);
  const pct = (us: number) => Math.round((us / busy) * 1000) / 10;
  return {
    file: shortUrl(join(dir, file)),
    windowMs: Math.round(windowUs / 1000),
    idlePercent: Math.round((idleUs / Math.max(1, windowUs)) * 1000) / 10,
    areas: [...areas]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([area, us]) => ({ area, percent: pct(us) })),
    frames: [...frames]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([frame, us]) => ({ frame, percent: pct(us) })),
  };
}

/** A few lines for the console and BENCHMARKS.md. */
export function describeProfile(
  summary: ProfileSummary | undefined,
  areas = 8,
  frames = 8,
): string[] {
  if (summary === undefined) return ['no CPU profile (Node.js did not write one)'];
  return [
    `profile ${summary.file}: ${summary.windowMs} ms sampled, ${summary.idlePercent}% idle`,
    `self time by area: ${summary.areas
      .slice(0, areas)
      .map((a) => `${a.area} ${a.percent}%`)
      .join(', ')}`,
    `top frames: ${summary.frames
      .slice(0, frames)
      .map((f) => `${f.frame} ${f.percent}%`)
      .join('; ')}`,
  ];
}

/**
 * Starts one more gateway under `node --cpu-prof`, lets `during(url, pid)` run against it, stops
 * it and summarises its main thread from `skip` on (`load`: from when `during` starts).
 * Node.js occasionally exits without writing the profile; one more attempt is made then, and
 * `undefined` returned if that fails too (a profile informs, it is not a measurement).
 */
async function profiled(
  ctx: BenchContext,
  options: Omit<AtriumProcessOptions, 'nodeOptions' | 'dir'>,
  skip: 'load' | 'none',
  /** May resolve to the moment (performance.now()) the summarised part starts. */
  during: (url: string, pid: number) => Promise<number | void>,
  nodeOptions: readonly string[] = [],
): Promise<ProfileSummary | undefined> {
  for (let attempt = 1; attempt <= 2; attempt += 1) {
    const dir = join(ctx.workDir, `prof-${options.name}-${attempt}`);
    const spawnedAt = performance.now();
    const gateway = ctx.track(
      await startAtrium({
        ...options,
        dir: ctx.workDir,
        nodeOptions: ['--cpu-prof', `--cpu-prof-dir=${dir}`, ...nodeOptions],
      }),
    );
    const loadFrom = performance.now();
    const mark = await during(gateway.url, gateway.pid);
    const skipMs = skip === 'load' ? (mark ?? loadFrom) - spawnedAt : 0;
    await gateway.stop();
    try {
      return await summarizeProfile(dir, skipMs);
    } catch (error) {
      ctx.log(
        `  no CPU profile from ${options.name} (attempt ${attempt}): ${(error as Error).message}`,
      );
    }
  }
  return undefined;
}

/**
 * Profiles a gateway under `spec(url)` (a warm-up, then the measured duration). Profiling costs
 * throughput, so a profiled run is never one of the measured rounds.
 */
export function profileUnderLoad(
  ctx: BenchContext,
  options: Omit<AtriumProcessOptions, 'nodeOptions' | 'dir'>,
  spec: (url: string) => Target['spec'],
): Promise<ProfileSummary | undefined> {
  return profiled(ctx, options, 'load', async (url, pid) => {
    await runLoad(
      {
        ...spec(url),
        warmupSeconds: ctx.settings.roundWarmupSeconds,
        durationSeconds: ctx.settings.durationSeconds,
      },
      pid,
    );
  });
}

/** Profiles a gateway's start-up: from spawn until it listens. */
export function profileStartup(
  ctx: BenchContext,
  options: Omit<AtriumProcessOptions, 'nodeOptions' | 'dir'>,
): Promise<ProfileSummary | undefined> {
  return profiled(ctx, options, 'none', async () => {});
}

/**
 * Preloaded into a profiled gateway (nothing added to src/): SIGUSR2 starts V8's sampling heap
 * profiler, counting objects already collected too (so it measures allocation, not what is
 * live), and a second SIGUSR2 writes the profile to /tmp/atrium-bench-heap-<pid>.json. A
 * `started` file tells the harness the sampling is on.
 */
const HEAP_PROBE = `
import { Session } from 'node:inspector/promises';
import { writeFileSync } from 'node:fs';
const session = new Session();
session.connect();
let sampling = false;
process.on('SIGUSR2', async () => {
  const base = '/tmp/atrium-bench-heap-' + process.pid;
  if (!sampling) {
    sampling = true;
    await session.post('HeapProfiler.enable');
    await session.post('HeapProfiler.startSampling', {
      samplingInterval: 32768,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
    writeFileSync(base + '.started', '');
  } else {
    const { profile } = await session.post('HeapProfiler.stopSampling');
    writeFileSync(base + '.json', JSON.stringify(profile));
  }
});
`;
const HEAP_PROBE_ARGS = ['--import', `data:text/javascript,${encodeURIComponent(HEAP_PROBE)}`];

interface HeapNode {
  callFrame: CallFrame;
  selfSize: number;
  children?: HeapNode[];
}

async function waitForFile(path: string, what: string): Promise<string> {
  for (let i = 0; i < 600; i += 1) {
    try {
      return await readFile(path, 'utf8');
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  throw new Error(`no ${what} (${path})`);
}

/**
 * Bytes allocated under each area, inclusive: an allocation counts for every area on its stack
 * (so `src/sources` includes what graphql or pg allocated on its behalf, and areas overlap).
 */
function allocationsByArea(
  head: HeapNode,
  groups: Readonly<Record<string, RegExp>>,
): { total: number; areas: Map<string, number> } {
  const areas = new Map<string, number>();
  let total = 0;
  const walk = (node: HeapNode, above: ReadonlySet<string>) => {
    const { url } = node.callFrame;
    const named = url === '' ? [] : [areaOf(node.callFrame)];
    for (const [group, pattern] of Object.entries(groups)) {
      if (url !== '' && pattern.test(shortUrl(url))) named.push(group);
    }
    const fresh = named.filter((a) => !above.has(a));
    const here = fresh.length === 0 ? above : new Set([...above, ...fresh]);
    total += node.selfSize;
    for (const a of here) areas.set(a, (areas.get(a) ?? 0) + node.selfSize);
    for (const child of node.children ?? []) walk(child, here);
  };
  walk(head, new Set());
  return { total, areas };
}

/** A profile over a fixed number of requests: CPU time per request, in total and by area. */
export interface RequestProfile {
  summary: ProfileSummary;
  /** Requests answered in the summarised part. */
  requests: number;
  /** Main-thread busy (non-idle) milliseconds per request. */
  busyMsPerRequest: number;
  /** The same by area (the summary's top areas). */
  areasMsPerRequest: { area: string; ms: number }[];
  /** Bytes allocated per request (V8's sampling heap profiler), if it answered. */
  allocatedKiBPerRequest?: number | undefined;
  /** The same by area, inclusive (areas overlap), largest first. */
  allocatedKiBByArea?: { area: string; kib: number }[] | undefined;
}

/**
 * Profiles a gateway answering exactly `amount` requests of `spec(url)` after a warm-up (not
 * summarised), so that two gateways' profiles compare per request rather than per second of a
 * run whose request rate differs.
 */
export async function profileRequests(
  ctx: BenchContext,
  options: Omit<AtriumProcessOptions, 'nodeOptions' | 'dir'>,
  spec: (url: string) => Target['spec'],
  amount: number,
  /** Extra areas for the allocation figures: files (as `src/…`) matching each pattern. */
  groups: Readonly<Record<string, RegExp>> = {},
): Promise<RequestProfile | undefined> {
  let requests = 0;
  let heap: HeapNode | undefined;
  const summary = await profiled(
    ctx,
    options,
    'load',
    async (url, pid) => {
      await runLoad(
        { ...spec(url), warmupSeconds: 0, durationSeconds: ctx.settings.warmupSeconds },
        pid,
      );
      const base = `/tmp/atrium-bench-heap-${pid}`;
      await rm(`${base}.started`, { force: true });
      await rm(`${base}.json`, { force: true });
      process.kill(pid, 'SIGUSR2');
      await waitForFile(`${base}.started`, 'heap sampling');
      const mark = performance.now();
      const result = await runLoad(
        { ...spec(url), warmupSeconds: 0, durationSeconds: 1, amount },
        pid,
      );
      requests = result.completed;
      process.kill(pid, 'SIGUSR2');
      try {
        // Written in one call, but read it only once it parses.
        for (let i = 0; heap === undefined && i < 100; i += 1) {
          try {
            heap = (
              JSON.parse(await waitForFile(`${base}.json`, 'heap profile')) as { head: HeapNode }
            ).head;
          } catch (error) {
            if ((error as Error).message.startsWith('no heap')) throw error;
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
        }
      } catch (error) {
        ctx.log(`  no heap profile from ${options.name}: ${(error as Error).message}`);
      } finally {
        await rm(`${base}.started`, { force: true });
        await rm(`${base}.json`, { force: true });
      }
      return mark;
    },
    HEAP_PROBE_ARGS,
  );
  if (summary === undefined || requests === 0) return undefined;
  const allocated = heap === undefined ? undefined : allocationsByArea(heap, groups);
  const busyMs = summary.windowMs * (1 - summary.idlePercent / 100);
  const perRequest = busyMs / requests;
  return {
    summary,
    requests,
    busyMsPerRequest: perRequest,
    areasMsPerRequest: summary.areas.map((a) => ({
      area: a.area,
      ms: (a.percent / 100) * perRequest,
    })),
    allocatedKiBPerRequest: allocated && allocated.total / 1024 / requests,
    allocatedKiBByArea:
      allocated &&
      [...allocated.areas]
        .sort((a, b) => b[1] - a[1])
        .map(([area, bytes]) => ({ area, kib: bytes / 1024 / requests })),
  };
}
