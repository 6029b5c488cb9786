// How many TCP connections a local server holds, read from /proc/net/tcp and tcp6 (Linux): the established
// sockets whose local port is the server's. Used to see how many connections a web server keeps to a backend
// (HAProxy multiplexing over few, or one per request in flight).
import { readFileSync } from 'node:fs';

const ESTABLISHED = '01';

/** Established connections in one /proc/net/tcp table whose local port is `port`. */
export function countEstablished(table: string, port: number): number {
  let count = 0;
  for (const line of table.split('\n').slice(1)) {
    // "  sl  local_address rem_address   st ...": local_address is HEXADDR:HEXPORT.
    const fields = line.trim().split(/\s+/);
    const local = fields[1];
    if (local === undefined || fields[3] !== ESTABLISHED) continue;
    if (Number.parseInt(local.slice(local.lastIndexOf(':') + 1), 16) === port) count++;
  }
  return count;
}

/** Established TCP connections (IPv4 and IPv6) accepted on local `port` right now. */
export function establishedOnPort(port: number): number {
  let count = 0;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    try {
      count += countEstablished(readFileSync(file, 'latin1'), port);
    } catch {
      // no IPv6 table
    }
  }
  return count;
}

/** Samples establishedOnPort every `everyMs` until stop() is called, which returns the samples. */
export function sampleConnections(port: number, everyMs = 100): { stop(): number[] } {
  const samples: number[] = [];
  const timer = setInterval(() => samples.push(establishedOnPort(port)), everyMs);
  return {
    stop() {
      clearInterval(timer);
      return samples;
    },
  };
}
