import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'vitest';
import {
  freePort,
  startRedisServer,
  type RedisServer,
} from '../integration/store/redis-process.js';
import { eventually } from '../unit/store/store-contract.js';

const run = promisify(execFile);

/** A throwaway Redis Cluster of its own `redis-server` processes on free loopback ports. */
export interface RedisClusterProcesses {
  /** Where the nodes keep their cluster config files (removed by `stop`). */
  readonly dir: string;
  readonly servers: readonly RedisServer[];
  /** `127.0.0.1:<port>` of each master, the seed list for clients. */
  readonly nodes: readonly string[];
  /** Kills every node and removes the temp dir. */
  stop(): Promise<void>;
}

/**
 * Starts `masters` nodes (no replicas), joins them with `redis-cli --cluster create` and
 * waits until every node reports `cluster_state:ok`.
 */
export async function startRedisCluster(masters = 3): Promise<RedisClusterProcesses> {
  const dir = await mkdtemp(join(tmpdir(), 'atrium-cluster-'));
  const servers: RedisServer[] = [];
  const nodes: string[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(servers.map((server) => server.kill()));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const ports = new Set<number>();
    while (ports.size < masters * 2) ports.add(await freePort());
    const list = [...ports];
    for (let i = 0; i < masters; i += 1) {
      const port = list[2 * i] as number;
      const busPort = list[2 * i + 1] as number;
      servers.push(
        await startRedisServer(port, [
          '--cluster-enabled',
          'yes',
          '--cluster-port',
          String(busPort),
          '--cluster-config-file',
          join(dir, `nodes-${port}.conf`),
          '--cluster-node-timeout',
          '2000',
          '--dir',
          dir,
        ]),
      );
      nodes.push(`127.0.0.1:${port}`);
    }
    await run(
      'redis-cli',
      ['--cluster', 'create', ...nodes, '--cluster-replicas', '0', '--cluster-yes'],
      {
        timeout: 20_000,
      },
    );
    // Every node must agree the cluster is whole before a client can route.
    await eventually(async () => {
      for (const node of nodes) {
        const port = node.split(':')[1] as string;
        const { stdout } = await run('redis-cli', ['-p', port, 'cluster', 'info']);
        expect(stdout).toContain('cluster_state:ok');
      }
    }, 15_000);
  } catch (error) {
    await stop();
    throw error;
  }
  return { dir, servers, nodes, stop };
}
