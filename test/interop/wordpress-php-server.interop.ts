// WordPress served by the `php-server` command itself, run as a process (`node --import tsx src/cli/main.ts
// php-server --root <copy> --listen <port>`, no --upstream, so with the php-fpm it supervises): install, the
// front page, log in, pretty permalinks and a post at /<slug>/, a static file byte for byte, wp-config.php run
// and never sent, a dotfile refused; then php-fpm's master killed with -9 and the site answering again once
// the supervisor has started a new one; then SIGTERM stopping php-fpm and exiting 0.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findPhpFpm } from '../../src/php/php-fpm-supervisor';
import {
  childPids,
  freePort,
  httpRequest,
  NODE,
  Proc,
  processStates,
  REQUIRED,
  ROOT,
  TSX_LOADER,
  waitForListen,
} from './harness';
import { HAVE_WORDPRESS, view, Visitor, WORDPRESS_PACKAGES, WordPressSite } from './wordpress-site';

const HAVE = HAVE_WORDPRESS && findPhpFpm() !== null;

/** Every php-fpm master seen: each leads its own process group, which stopping php-server's would miss. */
const masters = new Set<number>();

/** The php-fpm master php-server started (its child named php-fpm…), or undefined. */
function fpmMaster(serverPid: number): number | undefined {
  const master = childPids(serverPid).find((pid) => {
    try {
      return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').startsWith('php-fpm');
    } catch {
      return false;
    }
  });
  if (master !== undefined) masters.add(master);
  return master;
}

/** Running, not a zombie (one nobody reaps, in a container without an init, counts as gone). */
function running(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2] !== 'Z';
  } catch {
    return false;
  }
}

describe.runIf(HAVE || REQUIRED)('WordPress through `fastcgi-engine php-server` with its own php-fpm', () => {
  let wp: WordPressSite;
  let port: number;
  let server: Proc;
  let visitor: Visitor;

  beforeAll(async () => {
    if (!HAVE) throw new Error(`needs MariaDB, WordPress and php-fpm (${WORDPRESS_PACKAGES} php8.2-fpm)`);
    wp = await WordPressSite.start('wp-php-server');
    port = await freePort();
    wp.createDatabase(port);
    fs.writeFileSync(path.join(wp.root, '.htaccess'), 'Deny from all\n');
    server = new Proc(
      'php-server',
      [
        NODE,
        '--import',
        TSX_LOADER,
        path.join(ROOT, 'src/cli/main.ts'),
        'php-server',
        '--root',
        wp.root,
        '--listen',
        `${port}`,
      ],
      { cwd: ROOT },
    );
    await waitForListen(port, 30_000, server);
    expect(fpmMaster(server.pid), 'php-server runs php-fpm').toBeDefined();
    visitor = new Visitor(port, {
      report: () =>
        [
          `--- php-server output (last 3000 characters)\n${server.output().slice(-3000)}`,
          `--- php-server and php-fpm processes\n${processStates([server.pid])}`,
          wp.report(),
        ].join('\n'),
    });
  }, 120_000);

  afterAll(async () => {
    await server?.stop('SIGTERM', 10_000);
    for (const pid of masters) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // stopped by php-server
      }
    }
    await wp?.stop();
  }, 60_000);

  // The timeouts leave room for one stalled GET's report and second try (Visitor).
  it(
    'installs, logs in, serves a post at its pretty URL and static files, never sends wp-config.php',
    { timeout: 150_000 },
    async () => {
      const v = visitor;
      await v.install();
      const front = await v.go('front page', '/', { marker: 'Hello world!' });
      expect([front.status, front.marked], 'the front page lists the first post').toEqual([200, true]);
      await v.logIn();
      const dashboard = await v.go('dashboard', '/wp-admin/', { marker: 'Dashboard' });
      expect([dashboard.status, dashboard.marked]).toEqual([200, true]);
      await v.prettyPermalinks();
      const pretty = await v.go('pretty URL', '/hello-world/', {
        marker: `${view('single 1')}<article><h1>Hello world!`,
      });
      expect([pretty.status, pretty.marked], '/hello-world/ through index.php').toEqual([200, true]);
      const byId = await v.go('by ID', '/?p=1');
      expect([byId.status, byId.location]).toEqual([301, 'http://127.0.0.1:PORT/hello-world/']);

      const asset = await v.go('static file', '/wp-includes/css/dashicons.min.css');
      expect(asset.status).toBe(200);
      expect(asset.headers['content-type']).toMatch(/^text\/css/);
      expect(asset.body.equals(fs.readFileSync(path.join(wp.root, 'wp-includes/css/dashicons.min.css')))).toBe(true);

      // Run by php-fpm, as nginx's PHP block would: it prints nothing, and its source never leaves.
      const config = await v.go('wp-config.php', '/wp-config.php');
      expect([config.status, config.text]).toEqual([200, '']);
      const pathInfo = await v.go('wp-config.php with PATH_INFO', '/wp-config.php/x.css');
      expect(pathInfo.text).not.toContain('DB_NAME');
      const dotfile = await v.go('.htaccess', '/.htaccess');
      expect(dotfile.status).toBe(403);
      expect(dotfile.text).not.toContain('Deny from all');
    },
  );

  it(
    'answers again after php-fpm master is killed with -9: the supervisor starts a new one',
    { timeout: 150_000 },
    async () => {
      const master = fpmMaster(server.pid);
      expect(master, 'php-server runs a php-fpm master').toBeDefined();
      const oldWorkers = childPids(master!);
      expect(oldWorkers.length).toBeGreaterThan(0);
      process.kill(master!, 'SIGKILL');
      const killedAt = Date.now();
      let restarted: number | undefined;
      while (Date.now() - killedAt < 10_000) {
        restarted = fpmMaster(server.pid);
        if (restarted !== undefined && restarted !== master) break;
        await delay(50);
      }
      expect(restarted, 'a new php-fpm master within 10 s').not.toBe(master);
      expect(restarted).toBeDefined();
      expect(running(master!)).toBe(false);
      // Until its socket listens the gateway answers 502; then every request succeeds.
      let first = 0;
      while (Date.now() - killedAt < 15_000) {
        first = (await httpRequest({ port, path: '/' })).status;
        if (first === 200) break;
        await delay(50);
      }
      expect(first, 'the front page after the restart').toBe(200);
      // Left alive, the dead master's workers would keep the socket and the new master could never listen.
      for (const pid of oldWorkers) expect(running(pid), `worker ${pid} of the killed master`).toBe(false);
      expect(fpmMaster(server.pid), 'the new master stays up').toBe(restarted);
      for (const [what, url, marker] of [
        ['pretty URL', '/hello-world/', view('single 1')],
        ['dashboard, logged in', '/wp-admin/', 'Dashboard'],
        ['front page', '/', 'Hello world!'],
      ] as const) {
        const step = await visitor.go(`${what} after the restart`, url, { marker });
        expect([step.status, step.marked], what).toEqual([200, true]);
      }
    },
  );

  it('stops php-fpm and exits 0 on SIGTERM', { timeout: 20_000 }, async () => {
    const master = fpmMaster(server.pid);
    expect(master).toBeDefined();
    const workers = childPids(master!);
    server.signal('SIGTERM');
    const { code } = await server.exited;
    expect(code).toBe(0);
    for (const pid of [master!, ...workers]) expect(running(pid), `php-fpm ${pid} after php-server`).toBe(false);
  });
});
