// The four workloads of the end-to-end benchmark: what wrk asks for, and what every backend must answer (checked
// once per backend before it is measured, so a row never counts wrong answers as fast ones). The backends'
// routes: bench/apps/e2e-handlers.ts (and its Go and C twins).
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { letters } from '../apps/e2e-handlers';

export type WorkloadId = 'hello' | '4k' | '64k' | 'post-1m';

export interface Workload {
  readonly id: WorkloadId;
  readonly title: string;
  /** The last path segment the backends route on. */
  readonly route: string;
  readonly method: 'GET' | 'POST';
  /** What the backend must answer, byte for byte. */
  readonly expected: Buffer;
}

/** The POST body: "0123456789abcdef" × 65536, 1 MiB (the Lua script builds the same bytes). */
export const POST_BODY = Buffer.from('0123456789abcdef'.repeat(65536));

export const WORKLOADS: readonly Workload[] = [
  {
    id: 'hello',
    title: 'hello world (GET, 12-byte response)',
    route: 'hello',
    method: 'GET',
    expected: Buffer.from('hello world\n'),
  },
  { id: '4k', title: '4 KB response (GET)', route: '4k', method: 'GET', expected: letters(4096) },
  { id: '64k', title: '64 KB response (GET)', route: '64k', method: 'GET', expected: letters(65536) },
  {
    id: 'post-1m',
    title: '1 MB POST, answered with its sha256 (64 hex digits)',
    route: 'echo',
    method: 'POST',
    expected: Buffer.from(createHash('sha256').update(POST_BODY).digest('hex')),
  },
];

/** The wrk Lua script for `workload` written into `dir`, or undefined for a plain GET. */
export function wrkScript(dir: string, workload: Workload): string | undefined {
  if (workload.method === 'GET') return undefined;
  const file = join(dir, `${workload.id}.lua`);
  writeFileSync(
    file,
    `-- ${workload.title}\nwrk.method = "POST"\nwrk.body = string.rep("0123456789abcdef", ${POST_BODY.length / 16})\nwrk.headers["Content-Type"] = "application/octet-stream"\n`,
  );
  return file;
}

/** One request of `workload` to `url`; resolves with null when the answer is the expected one, else what is wrong. */
export function checkAnswer(url: string, workload: Workload): Promise<string | null> {
  return new Promise((resolve) => {
    const headers =
      workload.method === 'POST'
        ? { 'Content-Type': 'application/octet-stream', 'Content-Length': String(POST_BODY.length) }
        : {};
    const req = request(url, { method: workload.method, headers, agent: false, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        if (res.statusCode !== 200)
          resolve(`status ${res.statusCode}: ${JSON.stringify(body.subarray(0, 200).toString())}`);
        else if (!body.equals(workload.expected))
          resolve(
            `wrong body (${body.length} bytes, want ${workload.expected.length}): ${JSON.stringify(body.subarray(0, 80).toString())}`,
          );
        else resolve(null);
      });
      res.on('error', (error) => resolve(error.message));
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 10 s')));
    req.on('error', (error) => resolve(error.message));
    req.end(workload.method === 'POST' ? POST_BODY : undefined);
  });
}
