/** What db:migrate and db:seed share: one line per tenant, a total, and the exit code. */
import type { TenantTaskOutcome } from '../src/backends/data/admin.js';
import { ConfigError } from '../src/config/load.js';

/** Prints one line per tenant and a total; returns the exit code (1 if any tenant failed). */
export function reportOutcomes(outcomes: readonly TenantTaskOutcome[], done: string): number {
  for (const o of outcomes) {
    const line = `${o.ok ? 'ok  ' : 'FAIL'} ${o.tenantId} @ ${o.target}: ${o.message}`;
    if (o.ok) console.log(line);
    else console.error(line);
  }
  const failed = outcomes.filter((o) => !o.ok).length;
  console.log(`${outcomes.length - failed} of ${outcomes.length} tenants ${done}`);
  return failed === 0 ? 0 : 1;
}

/** Runs a script's main: its result is the exit code; a bad config or argument exits 2. */
export function runScript(main: () => Promise<number>): void {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      console.error(error instanceof ConfigError ? error.message : error);
      process.exitCode = 2;
    },
  );
}
