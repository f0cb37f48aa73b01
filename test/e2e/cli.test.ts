import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'atrium.mjs');
const scratch = mkdtempSync(join(tmpdir(), 'atrium-cli-'));

async function atrium(args: string[], env: Record<string, string> = {}) {
  return run(process.execPath, [BIN, ...args], { cwd: ROOT, env: { ...process.env, ...env } }).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => e,
  );
}

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('the atrium CLI (bin/atrium.mjs)', () => {
  it('lists its commands under --help, and every command answers --help', async () => {
    const help = await atrium(['--help']);
    expect(help.code).toBe(0);
    for (const command of ['start', 'check', 'token', 'tenants', 'db migrate', 'db seed']) {
      expect(help.stdout).toContain(`  ${command} `);
    }
    for (const command of [['check'], ['db', 'migrate'], ['db', 'seed'], ['start']]) {
      const answer = await atrium([...command, '--help']);
      expect(answer.code).toBe(0);
      expect(answer.stdout).toContain(`usage: atrium ${command.join(' ')}`);
    }
    const unknown = await atrium(['frobnicate']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('unknown command "frobnicate"');
  }, 60_000);

  it('check refuses a config with a wrong field, naming it, and exits non-zero', async () => {
    const dir = join(scratch, 'demo');
    cpSync(join(ROOT, 'examples', 'demo'), dir, { recursive: true });
    const config = join(dir, 'atrium.yaml');
    writeFileSync(
      config,
      readFileSync(config, 'utf8').replace(/^server:\n/m, 'server:\n  colour: blue\n'),
    );
    const result = await atrium(['check'], { ATRIUM_CONFIG: config });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('server: Unrecognized key: "colour"');
  }, 60_000);
});
