// Fires one burst of concurrent GraphQL requests from its own process, so the gateway under
// test has its event loop to itself (as it would with real clients). Input (stdin, JSON):
// { url, requests: [{ token, query, variables }] }. Output (stdout, JSON):
// [{ status, requestId, body }].
import { Agent, request } from 'undici';

let input = '';
for await (const chunk of process.stdin) input += chunk;
const { url, requests } = JSON.parse(input);
const dispatcher = new Agent({ connections: requests.length, pipelining: 0 });
// Open the connections first, so the burst itself measures the gateway, not TCP handshakes.
await Promise.all(
  requests.map(() => request(`${url}/healthz`, { dispatcher }).then((r) => r.body.text())),
);
const answers = await Promise.all(
  requests.map(async ({ token, query, variables }) => {
    const res = await request(`${url}/graphql`, {
      method: 'POST',
      dispatcher,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query, variables }),
    });
    return {
      status: res.statusCode,
      requestId: res.headers['x-request-id'],
      body: await res.body.json(),
    };
  }),
);
await dispatcher.close();
process.stdout.write(JSON.stringify(answers));
