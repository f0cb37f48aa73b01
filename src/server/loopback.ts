import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';

/**
 * True when a request comes from this host and was not relayed: its socket's peer is a
 * loopback address (127.0.0.0/8, ::1, or 127.x mapped into IPv6), and it carries no proxy
 * header (`Forwarded`, `X-Forwarded-For`, `X-Real-IP`): a reverse proxy on this host would
 * otherwise make every client look local.
 */
export function isLoopbackRequest(req: Pick<IncomingMessage, 'socket' | 'headers'>): boolean {
  const { headers } = req;
  if (headers.forwarded || headers['x-forwarded-for'] || headers['x-real-ip']) return false;
  return isLoopbackAddress(req.socket.remoteAddress);
}

/** Whether an IP address (as Node reports a peer) is a loopback one. */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (address === undefined || isIP(address) === 0) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  if (isIP(v4) === 4) return v4.split('.')[0] === '127';
  return address === '::1';
}
