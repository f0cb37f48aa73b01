import { existsSync } from 'node:fs';

/**
 * The file to import for an operator's module named by the config (`seed.ts`, `resolvers.ts`).
 * Compiled (`npm run build`), an example's `.ts` module exists only as its `.js` sibling, while
 * the config still names the source: a missing `.ts` with a `.js` beside it means the `.js`.
 */
export function importableModuleFile(path: string): string {
  if (!path.endsWith('.ts') || existsSync(path)) return path;
  const built = `${path.slice(0, -3)}.js`;
  return existsSync(built) ? built : path;
}
