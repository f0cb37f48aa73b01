import { request } from 'node:http';

/** A decoded HTTP answer. */
export interface JsonResponse {
  status: number;
  headers: Headers;
  body: unknown;
}

/** GET (or another method) and decode the JSON body, if any. */
export async function call(url: string, init: RequestInit = {}): Promise<JsonResponse> {
  const res = await fetch(url, init);
  const text = await res.text();
  return {
    status: res.status,
    headers: res.headers,
    body: text === '' ? undefined : (JSON.parse(text) as unknown),
  };
}

/** POST a JSON value (or a raw string) and decode the answer. */
export function post(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<JsonResponse> {
  return call(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

/** An infer request body with one `features` input of the given rows. */
export function featuresRequest(
  rows: number[][],
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    ...extra,
    inputs: [
      {
        name: 'features',
        shape: [rows.length, rows[0]?.length ?? 5],
        datatype: 'FP32',
        data: rows.flat(),
      },
    ],
  };
}

/** The `data` of the `probability` output of a successful infer response. */
export function probabilities(body: unknown): number[] {
  const outputs = (body as { outputs: Array<{ name: string; data: number[] }> }).outputs;
  const out = outputs.find((o) => o.name === 'probability');
  if (out === undefined) throw new Error(`no probability output in ${JSON.stringify(body)}`);
  return out.data;
}

/**
 * Sends a raw request with node:http, tolerating the server closing the socket while the body
 * is still being written (what a 413 does), and returns status and body.
 */
export function rawRequest(
  url: string,
  options: { method: string; headers?: Record<string, string | number>; body?: Buffer | string },
): Promise<{
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method, headers: options.headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      // EPIPE/ECONNRESET after the response arrived are expected for early answers.
      if (err.code !== 'EPIPE' && err.code !== 'ECONNRESET') reject(err);
    });
    if (options.body !== undefined) req.write(options.body);
    req.end();
  });
}
