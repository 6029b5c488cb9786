// Bounded memory both ways: a 256 MiB body to a slow reader and a 256 MiB response to a slow peer must not
// grow the server's RSS by more than 64 MiB. The server runs in a child process so its RSS is its own.
import { describe, expect, it, onTestFinished } from 'vitest';
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { encodeRecord } from '../../src/wire/records';
import { buildRequest } from '../helpers/fcgi-peer';

const MiB = 1024 * 1024;
const TOTAL = 256 * MiB;
const LIMIT = 64 * MiB;

async function startApp(mode: string): Promise<{ path: string; lines: AsyncIterator<string> }> {
  const dir = mkdtempSync(join(tmpdir(), 'fcgi-mem-'));
  const path = join(dir, 'app.sock');
  const child = spawn(
    process.execPath,
    ['--expose-gc', '--import', 'tsx', join(__dirname, '../fixtures/apps/memory-app.ts'), path, mode, String(TOTAL)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  onTestFinished(async () => {
    child.kill('SIGTERM');
    await once(child, 'exit');
    rmSync(dir, { recursive: true, force: true });
  });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  expect((await lines.next()).value).toBe('listening');
  return { path, lines };
}

describe('memory', () => {
  it('stays bounded while a handler reads a 256 MiB body slowly', async () => {
    const { path, lines } = await startApp('slow-reader');
    const socket = connect(path);
    await once(socket, 'connect');
    const received: Buffer[] = [];
    socket.on('data', (c: Buffer) => received.push(c));
    socket.write(buildRequest({ params: { REQUEST_METHOD: 'POST', CONTENT_LENGTH: String(TOTAL) }, noStdinEnd: true }));
    // STDIN as fast as the server lets us: the socket buffer fills whenever the server stops reading.
    const record = encodeRecord(5, 1, Buffer.alloc(65528, 0x62));
    for (let sent = 0; sent < TOTAL; sent += 65528) {
      const content = Math.min(65528, TOTAL - sent);
      const ok = socket.write(content === 65528 ? record : encodeRecord(5, 1, Buffer.alloc(content, 0x62)));
      if (!ok) await once(socket, 'drain');
    }
    socket.write(encodeRecord(5, 1));
    const report = JSON.parse((await lines.next()).value as string) as { baseline: number; peak: number };
    await once(socket, 'close');
    expect(Buffer.concat(received).toString('latin1')).toContain(`{"total":${TOTAL}}`);
    console.log(`rss growth ${((report.peak - report.baseline) / MiB).toFixed(1)} MiB`);
    expect(report.peak - report.baseline).toBeLessThan(LIMIT);
  }, 120_000);

  it('stays bounded while a slow peer reads a 256 MiB response', async () => {
    const { path, lines } = await startApp('big-response');
    const socket = connect(path);
    await once(socket, 'connect');
    let bytes = 0;
    let sincePause = 0;
    socket.on('data', (c: Buffer) => {
      bytes += c.length;
      sincePause += c.length;
      if (sincePause >= 4 * MiB) {
        sincePause = 0;
        socket.pause();
        setTimeout(() => socket.resume(), 5);
      }
    });
    socket.write(buildRequest({ params: { REQUEST_METHOD: 'GET' } }));
    const report = JSON.parse((await lines.next()).value as string) as { baseline: number; peak: number };
    await once(socket, 'close');
    // Records add 8 header bytes per 64 KiB; the body alone is 256 MiB.
    expect(bytes).toBeGreaterThan(TOTAL);
    expect(bytes).toBeLessThan(TOTAL + TOTAL / 1000);
    console.log(`rss growth ${((report.peak - report.baseline) / MiB).toFixed(1)} MiB`);
    expect(report.peak - report.baseline).toBeLessThan(LIMIT);
  }, 120_000);
});
