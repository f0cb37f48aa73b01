/** A one-off GraphQL request from the orchestrator (probes and set-up, never the measured load). */
export interface GraphqlAnswer {
  status: number;
  data?: Record<string, unknown> | null;
  errors?: { message: string; extensions?: { code?: string } }[];
}

export async function graphql(
  url: string,
  token: string,
  query: string,
  variables?: Record<string, unknown>,
): Promise<GraphqlAnswer> {
  const res = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  return { status: res.status, ...((await res.json()) as Omit<GraphqlAnswer, 'status'>) };
}

/** Throws with the answer when it is not a clean 200 (set-up must not measure failures). */
export function expectClean(answer: GraphqlAnswer, what: string): Record<string, unknown> {
  if (answer.status !== 200 || answer.errors || !answer.data) {
    throw new Error(`${what}: unexpected answer ${JSON.stringify(answer).slice(0, 500)}`);
  }
  return answer.data;
}

export interface ModelServerStats {
  inferRequests: Record<string, number>;
  inferredRows: Record<string, number>;
}

export async function modelServerStats(url: string): Promise<ModelServerStats> {
  return (await (await fetch(`${url}/stats`)).json()) as ModelServerStats;
}

export async function resetModelServerStats(url: string): Promise<void> {
  await (await fetch(`${url}/stats/reset`, { method: 'POST' })).text();
}

export const total = (record: Record<string, number>) =>
  Object.values(record).reduce((a, b) => a + b, 0);
