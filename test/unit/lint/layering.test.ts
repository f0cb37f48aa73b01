/**
 * The layering rules of eslint.config.js (DESIGN.md, issue 14 item 5), run on probe sources
 * placed where they would break them: each probe must be refused with the rule's own message,
 * and the same import where it belongs must pass.
 */
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const eslint = new ESLint({ cwd: ROOT });

async function messages(filePath: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath });
  return (result?.messages ?? []).map((m) => `${m.ruleId}: ${m.message}`);
}

describe('layering lint rules', () => {
  it.each([
    ['src/limits/probe.ts', "import { parse } from 'graphql';\nexport const p = parse;\n"],
    [
      'src/backends/probe.ts',
      "import { GraphQLError } from 'graphql/error/index.js';\nexport const e = GraphQLError;\n",
    ],
    [
      'src/store/probe.ts',
      "import type { ApolloServerPlugin } from '@apollo/server';\nexport type P = ApolloServerPlugin;\n",
    ],
    [
      'src/auth/probe.ts',
      "import { mergeSchemas } from '@graphql-tools/schema';\nexport const m = mergeSchemas;\n",
    ],
    [
      'src/tenancy/probe.ts',
      "import { compileQuery } from 'graphql-jit';\nexport const c = compileQuery;\n",
    ],
    ['src/errors.ts', "import { GraphQLError } from 'graphql';\nexport const e = GraphQLError;\n"],
  ])('%s may not import GraphQL code', async (file, code) => {
    const found = await messages(file, code);
    expect(found.join('\n')).toMatch(/no-restricted-imports: .*(graphql|GraphQL)/);
  });

  it('bans process.env outside src/config/', async () => {
    const code = 'export const port = process.env.PORT;\n';
    expect((await messages('src/server/probe.ts', code)).join('\n')).toMatch(/process\.env/);
    expect(await messages('src/config/probe.ts', code)).toEqual([]);
  });

  it('bans imports that point up the layers', async () => {
    const code =
      "import { createGateway } from '../server/gateway.js';\nexport const g = createGateway;\n";
    expect((await messages('src/limits/probe.ts', code)).join('\n')).toMatch(
      /limits\/ must not import server\//,
    );
  });

  it('lets the GraphQL layer import graphql', async () => {
    const code = "import { parse } from 'graphql';\nexport const p = parse;\n";
    expect(await messages('src/graphql/probe.ts', code)).toEqual([]);
    expect(await messages('src/server/probe.ts', code)).toEqual([]);
  });
});
