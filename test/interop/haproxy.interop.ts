// HAProxy (Debian haproxy 2.6) in front of the engine: the recipe of docs/deployment.md, run in the foreground
// (-db) in a temporary directory. HAProxy's fcgi-app multiplexes: with option get-values it reads the app's
// FCGI_MAX_REQS as the number of streams it may put on one connection, so this suite is where an FCGI_MAX_REQS
// that the app does not enforce shows (it did: 150 streams on a connection that refused its 129th).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { App, Events, freePorts, httpRequest, param, removeDir, tempDir } from './harness';
import { haproxy } from './recipes';
import { env, MiB, upload, withQuery } from './scenarios';
import { startRecipe, type RunningServer } from './servers';
import { describeServer } from './suite';

describeServer('HAProxy in front of the engine', [{ binary: 'haproxy', pkg: 'haproxy' }], () => {
  let dir: string;
  let events: Events;
  let app: App;
  let server: RunningServer;
  let port: number;

  let mpxPort: number;

  beforeAll(async () => {
    dir = tempDir('haproxy');
    fs.mkdirSync(path.join(dir, 'www'));
    const [HTTP_PORT, APP_PORT, HTTP_PORT_SINGLE, APP_PORT_SINGLE] = await freePorts(4);
    events = new Events(path.join(dir, 'events.log'));
    app = await App.start(
      events,
      [
        { listen: `tcp:${APP_PORT}`, name: 'main' },
        { listen: `tcp:${APP_PORT_SINGLE}`, name: 'single', multiplex: false },
      ],
      { FCGI_WEB_SERVER_ADDRS: '127.0.0.1' },
    );
    server = await startRecipe(
      haproxy,
      dir,
      { HTTP_PORT, APP_PORT, HTTP_PORT_SINGLE, APP_PORT_SINGLE },
      { waitFor: [HTTP_PORT!, HTTP_PORT_SINGLE!], errorLog: path.join(dir, 'error.log') },
    );
    mpxPort = HTTP_PORT!;
    port = HTTP_PORT_SINGLE!;
  });

  afterAll(async () => {
    await server?.stop();
    await app?.stop();
    events?.killAll();
    if (dir !== undefined) removeDir(dir);
  });

  /** 380 slow GETs and 20 uploads of 5 MB at once; returns what failed and how many connections the app accepted. */
  async function burst(
    httpPort: number,
    name: string,
  ): Promise<{ failed: { tag: string; status: number; ms: number }[]; opened: number; delivered: Set<string> }> {
    const before = (await env(httpPort, `/${name}/count`)).connections;
    const started = Date.now();
    const slow = Array.from({ length: 380 }, (_, i) => {
      const t = `${name}-slow-${i}`;
      return httpRequest({
        port: httpPort,
        path: withQuery(`/${name}/c/${i}`, { do: 'slow', ms: 300, tag: t }),
        timeoutMs: 40_000,
      }).then((r) => ({ tag: t, status: r.status, ms: Date.now() - started }));
    });
    const uploads = Array.from({ length: 20 }, (_, i) => {
      const t = `${name}-up-${i}`;
      return upload(httpPort, `/${name}/up/${i}`, 5 * MiB, { tag: t }).then(
        () => ({ tag: t, status: 200, ms: Date.now() - started }),
        (error: Error) => ({
          tag: t,
          status: Number(/expected (\d+)/.exec(error.message)?.[1] ?? 0),
          ms: Date.now() - started,
        }),
      );
    });
    const results = await Promise.all([...slow, ...uploads]);
    const opened = (await env(httpPort, `/${name}/count`)).connections - before;
    const delivered = new Set(events.find((e) => e.ev === 'request').map((e) => String(e.tag)));
    return { failed: results.filter((r) => r.status !== 200), opened, delivered };
  }

  it('GET: CGI variables from the fcgi-app, kept connections (FCGI_KEEP_CONN)', async () => {
    const a = await env(mpxPort, '/some/path?x=1');
    expect(a.method).toBe('GET');
    expect(a.url).toBe('/some/path?x=1&do=env');
    expect(param(a, 'REQUEST_URI')).toBe('/some/path?x=1&do=env');
    expect(param(a, 'DOCUMENT_ROOT')).toBe(path.join(dir, 'www'));
    expect(a.keepConn).toBe(true);
    const b = await env(mpxPort, '/again');
    expect(b.connections).toBe(a.connections);
  });

  it('multiplexed: the app takes every stream HAProxy sends it (FCGI_MAX_REQS is what it enforces); what fails, HAProxy failed before sending', async () => {
    const { failed, opened, delivered } = await burst(mpxPort, 'mpx');
    console.log(
      `HAProxy multiplexing: 400 concurrent requests over ${opened} new FastCGI connection(s); ${failed.length} failed in HAProxy`,
    );
    // Nothing waits for a timeout: an OVERLOADED stream (a FCGI_MAX_REQS the app does not enforce) left
    // HAProxy's client waiting 30 s for a 504.
    expect(failed.filter((f) => f.status === 504 || f.ms > 20_000)).toEqual([]);
    // HAProxy 2.6 fails some streams itself (500, termination state IH) when it adds a stream to a connection
    // whose output buffer is partly full: it sends BEGIN_REQUEST and at once ABORT_REQUEST, never the params
    // (seen on the wire between the two). Those never reach the app; every request that did was answered.
    for (const f of failed) {
      expect(f.status).toBe(500);
      expect(delivered.has(f.tag)).toBe(false);
    }
    expect(failed.length).toBeLessThan(200);
    // How many connections HAProxy opens for a burst is its choice (reported above, not asserted).
  }, 120_000);

  it('one request per connection at a time (multiplex: false): 400 concurrent, 5 MB uploads among them, every answer right, connections kept', async () => {
    const { failed, opened } = await burst(port, 'single');
    console.log(`HAProxy without multiplexing: 400 concurrent requests over ${opened} new FastCGI connection(s)`);
    expect(failed).toEqual([]);
  }, 120_000);
});
