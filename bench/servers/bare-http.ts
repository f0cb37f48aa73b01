/**
 * Baseline: a bare node:http server answering every request with one fixed GraphQL-shaped JSON
 * body, after reading the request body (as any real server must). The ceiling for "an HTTP
 * server in this Node.js on this machine".
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const BODY = JSON.stringify({ data: { hello: 'world' } });
const LENGTH = String(Buffer.byteLength(BODY));

const server = createServer((req, res) => {
  req.on('data', () => {});
  req.on('end', () => {
    res.writeHead(200, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': LENGTH,
    });
    res.end(BODY);
  });
});
server.keepAliveTimeout = 5_000;
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  console.log(`listening http://127.0.0.1:${port}`);
});
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
