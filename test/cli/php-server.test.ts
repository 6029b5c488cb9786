// `fastcgi-engine php-server`: its arguments (--help, --root missing or not a directory: exit 2 before any
// php-fpm starts), and, with php-fpm installed, the php-fpm it supervises: killed with -9, it is replaced by a
// new master whose workers serve the next requests, the dead master's workers are gone, and SIGTERM ends both.
import * as fs from 'node:fs';
import * as net from 'node:net';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { describe, expect, it, onTestFinished } from 'vitest';
import { findPhpFpm } from '../../src/php/php-fpm-supervisor';
import { REQUIRED } from '../helpers/binaries';
import { runCli, start, tempDir, waitFor } from './helpers';

describe('php-server arguments', () => {
  it('--help exits 0 and names every flag', async () => {
    const out = await runCli(['php-server', '--help']);
    expect(out.code).toBe(0);
    for (const flag of [
      '--root',
      '--listen',
      '--upstream',
      '--workers',
      '--front-controller',
      '--deny',
      '--max-body',
      '--help',
    ])
      expect(out.stdout, flag).toContain(flag);
  });

  it('exits 2 without --root, pointing to --help', async () => {
    const out = await runCli(['php-server']);
    expect(out.code).toBe(2);
    expect(out.stderr).toContain('--root DIR is required');
    expect(out.stderr).toContain("Run 'fastcgi-engine php-server --help'");
  });

  it('exits 2 naming the path when --root does not exist or is a file', async () => {
    const dir = tempDir();
    const missing = join(dir, 'no-such-site');
    const out = await runCli(['php-server', '--root', missing]);
    expect(out.code).toBe(2);
    expect(out.stderr).toContain(`--root ${missing} is not a directory`);
    fs.writeFileSync(join(dir, 'index.php'), '<?php');
    const file = await runCli(['php-server', '--root', join(dir, 'index.php')]);
    expect(file.code).toBe(2);
    expect(file.stderr).toContain('is not a directory');
  });

  it('exits 2 on a bad --listen or --workers', async () => {
    const dir = tempDir();
    const listen = await runCli(['php-server', '--root', dir, '--listen', 'localhost']);
    expect([listen.code, listen.stderr.includes('--listen expects')]).toEqual([2, true]);
    const workers = await runCli(['php-server', '--root', dir, '--workers', '0']);
    expect([workers.code, workers.stderr.includes('--workers')]).toEqual([2, true]);
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** The parent PID of `pid`, from /proc, or null when it is gone. */
function parentOf(pid: number): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return null;
  }
}

function childrenOf(ppid: number): number[] {
  return fs
    .readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry) && parentOf(Number(entry)) === ppid)
    .map(Number);
}

/** Running: a zombie no one reaps (a container without an init) counts as gone. */
function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** GET / of the site: the PID of the php-fpm worker that ran index.php, or null on a failure. */
async function workerPid(port: number): Promise<number | null> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/`);
    const text = await res.text();
    return res.status === 200 && /^pid \d+$/.test(text) ? Number(text.slice(4)) : null;
  } catch {
    return null;
  }
}

const PHP_FPM = findPhpFpm();

describe.runIf(PHP_FPM !== null || REQUIRED)('php-server with its own php-fpm', () => {
  it('replaces a php-fpm master killed with -9, ends its orphaned workers, and stops php-fpm on SIGTERM', async () => {
    const root = tempDir();
    fs.writeFileSync(join(root, 'index.php'), '<?php echo "pid ", getmypid();');
    const port = await freePort();
    const server = start(['php-server', '--root', root, '--listen', `${port}`, '--workers', '2']);
    // php-fpm leads its own session and process group, out of reach of a kill of php-server: each master's
    // group is ended here whatever happens.
    const masters = new Set<number>();
    onTestFinished(() => {
      for (const pid of masters) {
        try {
          process.kill(-pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    });
    const master = (): number | undefined => {
      const pid = childrenOf(server.child.pid!)[0];
      if (pid !== undefined) masters.add(pid);
      return pid;
    };
    await waitFor(() => server.stderr().includes('serving') || server.child.exitCode !== null, 15_000, 'php-server');
    expect(server.stderr()).toContain(`http://127.0.0.1:${port}/`);

    const first = master();
    expect(first).toBeDefined();
    const before = await workerPid(port);
    expect(before !== null && parentOf(before) === first, 'a worker of the first master answers').toBe(true);
    const oldWorkers = childrenOf(first!);
    process.kill(first!, 'SIGKILL');

    let second: number | undefined;
    await waitFor(
      async () => {
        second = master();
        const after = second === undefined || second === first ? null : await workerPid(port);
        return after !== null && parentOf(after) === second;
      },
      10_000,
      'a worker of a new master to answer',
    );
    expect(server.stderr()).toMatch(/php-fpm exited \(SIGKILL\); restarting in \d+ ms/);
    // The dead master's workers would otherwise keep the socket, so no new master could listen on it.
    for (const pid of oldWorkers) expect(alive(pid), `old worker ${pid}`).toBe(false);
    for (let i = 0; i < 10; i++) {
      const pid = await workerPid(port);
      expect(pid !== null && parentOf(pid) === second, `request ${i} served by the new master`).toBe(true);
    }
    await delay(300);
    expect(master(), 'the new master stays up').toBe(second);

    const workers = childrenOf(second!);
    expect(workers.length).toBeGreaterThan(0);
    server.child.kill('SIGTERM');
    const timer = setTimeout(() => server.child.kill('SIGKILL'), 10_000);
    const code = await server.exited;
    clearTimeout(timer);
    expect(code, 'php-server exits by itself on SIGTERM').toBe(0);
    expect(alive(second!), 'the master after SIGTERM').toBe(false);
    for (const pid of workers) expect(alive(pid), `worker ${pid} after SIGTERM`).toBe(false);
  });
});
