// Soak: the engine behind nginx at full load for a long time, watching for errors and for memory that grows.
//
//   npm run soak                        600 s
//   npm run soak -- --seconds 60        the CI run
//
// nginx-light (Debian; one worker, loopback, in the foreground from a temp dir) passes every request to the
// app (test/fixtures/apps/live-app.ts, default server options, no heap cap) on a unix socket through an
// upstream keepalive pool (fastcgi_keep_conn on). A closed loop of HTTP/1.1 keep-alive clients in this process
// (--connections, default 16) sends, without pause, a mix: 60 % GET /hello, 30 % GET /bytes?n=65536 (64 KiB),
// 10 % POST /echo of 1 MiB, which the app answers with the body's sha256; every answer is checked.
//
// The app's RSS is read from /proc every second. Drift compares the median RSS of the first 10 % after a 10 %
// warm-up (for 600 s: 60-120 s) with the median of the last 10 % (540-600 s), so one GC's sawtooth does not
// decide it. Prints requests, errors (with the first few), RSS after warm-up and at the end, and the drift;
// exits 1 when there was any error or the drift is 5 % or more.
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { liveBytes } from '../test/fixtures/apps/live-app';
import { benchFlags, numberFlag } from './_util/args';
import { prng } from './_util/legit';
import { LiveServer, mib } from './_util/live-server';
import { startNginxRoutes } from './_util/nginx';
import { cleanUpOnExit, findBinary, stop } from './_util/processes';

interface Args {
  seconds: number;
  connections: number;
}

function parseArgs(argv: string[]): Args {
  const flags = benchFlags(argv, 'usage: soak.ts [--seconds N (default 600)] [--connections N (default 16)]', [
    'seconds',
    'connections',
  ]);
  const args: Args = {
    seconds: numberFlag(flags.seconds, 600, 'seconds'),
    connections: numberFlag(flags.connections, 16, 'connections'),
  };
  if (!(args.seconds >= 10)) throw new Error('--seconds must be at least 10');
  return args;
}

// nginx in front of the engine: the 1 MiB uploads stay in memory and 64 KiB answers in buffers, so the soak
// measures the app, not the disk.
function startNginx(binary: string, dir: string, appSocket: string): Promise<{ child: ChildProcess; port: number }> {
  return startNginxRoutes(
    binary,
    dir,
    [{ location: '/', protocol: 'fastcgi', server: `unix:${appSocket}`, keepalive: 16 }],
    { root: dir, maxBodyBytes: 2 * 1024 * 1024, responseBufferBytes: 256 * 1024 },
  );
}

const median = (values: number[]): number => {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
};

type Kind = 'hello' | 'bytes64k' | 'post1m';

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const nginxBinary = findBinary(['nginx']);
  if (nginxBinary === null) throw new Error('nginx not found: apt-get install nginx-light');
  const dir = mkdtempSync(join(tmpdir(), 'fcgi-soak-'));
  cleanUpOnExit(dir);
  // nginx's worker runs as root here, or as the invoking user: either way the socket must let it in.
  const app = await LiveServer.start({ server: { socketMode: 0o666 }, heapMiB: 0 });
  const nginx = await startNginx(nginxBinary, dir, app.path);

  const hello = Buffer.from('hello world');
  const bytes64k = liveBytes(64 * 1024);
  const upload = Buffer.alloc(1024 * 1024);
  const fill = prng(0x50a4);
  for (let i = 0; i < upload.length; i++) upload[i] = (fill() * 256) | 0;
  const uploadAnswer = Buffer.from(`${createHash('sha256').update(upload).digest('hex')} ${upload.length}`);
  const expected: Record<Kind, Buffer> = { hello, bytes64k, post1m: uploadAnswer };
  const paths: Record<Kind, string> = { hello: '/hello', bytes64k: '/bytes?n=65536', post1m: '/echo' };

  const agent = new Agent({ keepAlive: true, maxSockets: args.connections });
  const counts: Record<Kind, number> = { hello: 0, bytes64k: 0, post1m: 0 };
  let errors = 0;
  const firstErrors: string[] = [];
  const fail = (kind: Kind, why: string): void => {
    errors++;
    if (firstErrors.length < 10) firstErrors.push(`${kind}: ${why}`);
  };

  const one = (kind: Kind): Promise<void> =>
    new Promise((resolve) => {
      const post = kind === 'post1m';
      const req = httpRequest(
        {
          host: '127.0.0.1',
          port: nginx.port,
          path: paths[kind],
          method: post ? 'POST' : 'GET',
          agent,
          headers: post ? { 'content-length': upload.length } : {},
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => {
            const body = Buffer.concat(chunks);
            if (res.statusCode !== 200) fail(kind, `status ${res.statusCode}: ${body.subarray(0, 120).toString()}`);
            else if (!body.equals(expected[kind]))
              fail(kind, `body of ${body.length} bytes differs from the ${expected[kind].length} expected`);
            else counts[kind]++;
            resolve();
          });
          res.on('error', (error) => {
            fail(kind, error.message);
            resolve();
          });
        },
      );
      req.setTimeout(30_000, () => req.destroy(new Error('no answer within 30 s')));
      req.on('error', (error) => {
        fail(kind, error.message);
        resolve();
      });
      req.end(post ? upload : undefined);
    });

  const started = Date.now();
  const deadline = started + args.seconds * 1000;
  const samples: Array<{ t: number; rss: number }> = [];
  const sampler = setInterval(() => {
    const r = app.rss();
    if (r !== null) samples.push({ t: (Date.now() - started) / 1000, rss: r.rss });
  }, 1000);
  const step = Math.max(10, Math.round(args.seconds / 10));
  let nextReport = step;
  const reporter = setInterval(() => {
    const t = (Date.now() - started) / 1000;
    if (t < nextReport) return;
    nextReport += step;
    const total = counts.hello + counts.bytes64k + counts.post1m;
    process.stdout.write(
      `  ${t.toFixed(0)} s: ${total} requests (${(total / t).toFixed(0)}/s), ${errors} errors, app RSS ${mib(samples.at(-1)?.rss ?? 0)} MiB\n`,
    );
  }, 1000);

  process.stdout.write(
    `soak: ${args.seconds} s through nginx (${nginxBinary}, 1 worker, upstream keepalive) to the app on a unix socket; ` +
      `${args.connections} keep-alive HTTP connections, closed loop; mix 60 % GET /hello, 30 % GET 64 KiB, 10 % POST 1 MiB echoed as sha256; node ${process.version}\n`,
  );
  const pick = prng(0x50a5);
  await Promise.all(
    Array.from({ length: args.connections }, async () => {
      while (Date.now() < deadline && app.exit === null) {
        const roll = pick();
        await one(roll < 0.6 ? 'hello' : roll < 0.9 ? 'bytes64k' : 'post1m');
      }
    }),
  );
  clearInterval(sampler);
  clearInterval(reporter);
  agent.destroy();
  const elapsed = (Date.now() - started) / 1000;
  const stats = await app.stats();

  const within = (from: number, to: number): number[] =>
    samples.filter((s) => s.t >= from * args.seconds && s.t < to * args.seconds).map((s) => s.rss);
  const base = median(within(0.1, 0.2));
  const end = median(within(0.9, 1.01));
  const drift = base === 0 ? 0 : (end - base) / base;
  const afterWarmup = samples.find((s) => s.t >= 0.1 * args.seconds)?.rss ?? 0;
  const last = samples.at(-1)?.rss ?? 0;
  const peak = Math.max(0, ...samples.map((s) => s.rss));
  const total = counts.hello + counts.bytes64k + counts.post1m;
  const problems: string[] = [];
  if (app.exit !== null) problems.push(`the app ${app.crash}`);
  if (errors > 0) problems.push(`${errors} errors: ${firstErrors.slice(0, 5).join('; ')}`);
  if (drift >= 0.05) problems.push(`RSS drift ${(drift * 100).toFixed(1)} % (limit 5 %)`);
  process.stdout.write(
    `\nsoak: ${total} requests in ${elapsed.toFixed(0)} s (${(total / elapsed).toFixed(0)}/s; hello ${counts.hello}, 64 KiB ${counts.bytes64k}, 1 MiB POST ${counts.post1m}), errors ${errors}\n` +
      `  app RSS: ${mib(afterWarmup)} MiB at 10 %, ${mib(last)} MiB at the end, peak ${mib(peak)} MiB; ` +
      `median ${mib(base)} MiB over 10-20 %, ${mib(end)} MiB over 90-100 %: drift ${drift >= 0 ? '+' : ''}${(drift * 100).toFixed(2)} %\n` +
      `  app after the run: ${stats === null ? 'gone' : `${stats.connections} connections (nginx's keepalive pool), ${stats.inFlight} handlers open, ${stats.bufferedBytes} bytes buffered, ${stats.handled} requests handled`}\n` +
      (problems.length === 0 ? 'soak: PASS\n' : problems.map((p) => `  FAIL: ${p}\n`).join('') + 'soak: FAILED\n'),
  );
  await stop(nginx.child);
  await app.stop();
  rmSync(dir, { recursive: true, force: true });
  process.exitCode = problems.length === 0 ? 0 : 1;
}

main().catch((error: Error) => {
  process.stderr.write(`soak: ${error.stack ?? error.message}\n`);
  process.exitCode = 1;
});
