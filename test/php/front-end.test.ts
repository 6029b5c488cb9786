// createPhpFrontEnd against a tree of files and a real php-fpm (test/client/php-fpm-harness.ts), on plain
// node:http and inside Express behind header-setting middleware. The same requests through nginx are compared
// in test/interop/php-front-end.interop.ts.
import express from 'express';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPhpFrontEnd, type PhpFrontEnd, type PhpFrontEndOptions } from '../../src/php/front-end';
import { PHP_FPM, PhpFpm, REQUIRED } from '../client/php-fpm-harness';
import { makeSite, type Site } from './site';

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(
  base: string,
  path: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const url = new URL(base);
    const req = http.request(
      {
        host: url.hostname,
        port: url.port,
        path,
        method: options.method ?? 'GET',
        headers: options.headers,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('latin1'),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

async function listen(handler: http.RequestListener): Promise<{ base: string; server: http.Server }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

const quiet = { warn: () => {}, error: () => {} };

describe.runIf(PHP_FPM !== null || REQUIRED)('createPhpFrontEnd with php-fpm', () => {
  let fpm: PhpFpm;
  let site: Site;
  let plain: { base: string; server: http.Server };
  let frontEnd: PhpFrontEnd;
  const servers: http.Server[] = [];
  const frontEnds: PhpFrontEnd[] = [];

  function make(options: Partial<PhpFrontEndOptions> = {}): PhpFrontEnd {
    const made = createPhpFrontEnd({ root: site.root, upstream: fpm.socketPath, logger: quiet, ...options });
    frontEnds.push(made);
    return made;
  }

  beforeAll(async () => {
    if (PHP_FPM === null) throw new Error('php-fpm8.2 not found: install the Debian package php8.2-fpm');
    site = makeSite();
    fpm = new PhpFpm(PHP_FPM);
    await fpm.start();
    frontEnd = make({ sendfileRoots: { '/protected/': site.files } });
    plain = await listen((req, res) => frontEnd(req, res));
    servers.push(plain.server);
  });

  afterAll(async () => {
    for (const server of servers) server.close();
    for (const made of frontEnds) await made.close();
    await fpm?.dispose();
    site?.dispose();
  });

  it('runs scripts, index files, PATH_INFO and the front controller with the query kept', async () => {
    const root = JSON.parse((await request(plain.base, '/?a=1')).body);
    expect(root).toMatchObject({
      script: 'index.php',
      SCRIPT_NAME: '/index.php',
      REQUEST_URI: '/?a=1',
      QUERY_STRING: 'a=1',
    });
    const info = JSON.parse((await request(plain.base, '/show.php/extra/path?q=1')).body);
    expect(info).toMatchObject({
      script: 'show.php',
      SCRIPT_NAME: '/show.php',
      PATH_INFO: '/extra/path',
      get: { q: '1' },
    });
    const pretty = JSON.parse((await request(plain.base, '/2024/05/hello-world/?p=3')).body);
    expect(pretty).toMatchObject({
      script: 'index.php',
      SCRIPT_NAME: '/index.php',
      REQUEST_URI: '/2024/05/hello-world/?p=3',
      QUERY_STRING: 'p=3',
    });
    expect(JSON.parse((await request(plain.base, '/sub/?k=v')).body)).toMatchObject({
      script: 'index.php',
      SCRIPT_NAME: '/sub/index.php',
      get: { k: 'v' },
    });
    const redirect = await request(plain.base, '/sub?k=v');
    expect([redirect.status, redirect.headers.location]).toEqual([301, '/sub/?k=v']);
    const posted = JSON.parse(
      (
        await request(plain.base, '/show.php', {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: 'name=ok',
        })
      ).body,
    );
    expect(posted.post).toEqual({ name: 'ok' });
  });

  it('serves static files through send: ETag, 304, ranges, HEAD, 405 for other methods', async () => {
    const css = await request(plain.base, '/style.css');
    expect([css.status, css.headers['content-type'], css.body]).toEqual([
      200,
      'text/css; charset=UTF-8',
      'body { color: red }\n',
    ]);
    const etag = css.headers.etag!;
    expect((await request(plain.base, '/style.css', { headers: { 'if-none-match': etag } })).status).toBe(304);
    const range = await request(plain.base, '/data.bin', { headers: { range: 'bytes=10-19' } });
    expect([range.status, range.headers['content-range'], range.body.length]).toEqual([206, 'bytes 10-19/10000', 10]);
    const head = await request(plain.base, '/data.bin', { method: 'HEAD' });
    expect([head.status, head.headers['content-length'], head.body]).toEqual([200, '10000', '']);
    const post = await request(plain.base, '/style.css', { method: 'POST', body: 'x' });
    expect([post.status, post.headers.allow]).toEqual([405, 'GET, HEAD']);
    expect((await request(plain.base, '/html/')).body).toBe('<h1>static index</h1>\n');
  });

  it('never sends PHP source, dotfiles or an upload run as PHP', async () => {
    const paths = [
      '/X.PHP',
      '/x.PHP',
      '/config.inc',
      '/old.phtml',
      '/.env',
      '/.htaccess',
      '/.git/config',
      '/%2egit/config',
      '/sub/../.env',
      '/show.php%00.jpg',
      '/uploads/evil.jpg/x.php',
      '/index.php%2500.jpg',
    ];
    for (const path of paths) {
      const reply = await request(plain.base, path);
      expect(reply.body, path).not.toMatch(/SOURCE-LEAK|RAN-AN-UPLOAD|<\?php/);
      // These name no file: the front controller answers them, as any missing path.
      if (path !== '/x.PHP' && path !== '/index.php%2500.jpg') expect(reply.status, path).toBeGreaterThanOrEqual(400);
    }
    expect((await request(plain.base, '/X.PHP')).status).toBe(403);
    expect((await request(plain.base, '/.git/config')).status).toBe(403);
    expect((await request(plain.base, '/show.php%00.jpg')).status).toBe(400);
    expect((await request(plain.base, '/uploads/evil.jpg/x.php')).status).toBe(404);
    expect((await request(plain.base, '/empty/')).status).toBe(403);
    expect((await request(plain.base, '/.well-known/security.txt')).status).toBe(200);
    // vendor/ is not denied by default (nginx and Caddy do not either); `deny` adds it.
    expect((await request(plain.base, '/vendor/composer.json')).status).toBe(200);
    const denying = await listen(make({ deny: ['/vendor/'] }));
    servers.push(denying.server);
    expect((await request(denying.base, '/vendor/composer.json')).status).toBe(403);
  });

  it('refuses an upload over maxBodySize from its Content-Length, closing the connection', async () => {
    const small = await listen(make({ maxBodySize: 100 }));
    servers.push(small.server);
    // Only the head is sent: the answer must come without the body being read.
    const reply = await new Promise<Reply>((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port: new URL(small.base).port,
          path: '/show.php',
          method: 'POST',
          headers: { 'content-length': '5000' },
          agent: false,
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: '' }));
        },
      );
      req.on('error', reject);
      req.flushHeaders();
    });
    expect([reply.status, reply.headers.connection]).toEqual([413, 'close']);
  });

  it('answers X-Accel-Redirect and X-Sendfile with the file, keeping the backend headers, never outside the roots', async () => {
    const file = await request(plain.base, '/download.php?to=/protected/report.txt');
    expect(file.status).toBe(200);
    expect(file.body).toBe('the protected report\n');
    expect(file.headers['content-disposition']).toBe('attachment; filename="report.txt"');
    expect(file.headers['set-cookie']).toEqual(['seen=1', 'twice=2']);
    expect(file.headers['x-accel-redirect']).toBeUndefined();
    const ranged = await request(plain.base, '/download.php?to=/protected/report.txt', {
      headers: { range: 'bytes=4-12' },
    });
    expect([ranged.status, ranged.body]).toEqual([206, 'protected']);
    expect((await request(plain.base, '/download.php?to=/protected/../www/config.inc')).status).toBe(403);
    expect((await request(plain.base, '/download.php?to=/etc/passwd')).status).toBe(403);
    expect((await request(plain.base, '/download.php?to=/protected/nothing.txt')).status).toBe(404);
    const listed = await listen(make({ sendfileRoots: [site.files] }));
    servers.push(listed.server);
    expect((await request(listed.base, `/download.php?via=sendfile&to=${site.files}/report.txt`)).body).toBe(
      'the protected report\n',
    );
    const outside = await request(listed.base, `/download.php?via=sendfile&to=${site.root}/config.inc`);
    expect(outside.status).toBe(403);
    expect(outside.body).not.toContain('SOURCE-LEAK');
  });

  it('inside Express: behind header-setting middleware every backend Set-Cookie arrives, 404 falls through, mounted paths work', async () => {
    const app = express();
    app.use((_req, res, next) => {
      res.setHeader('X-Frame-Options', 'SAMEORIGIN');
      res.cookie('mw', 'first');
      next();
    });
    app.use('/blog', make({ frontController: false }));
    app.use((_req, res) => {
      res.status(404).send('express fallthrough');
    });
    const mounted = await listen(app);
    servers.push(mounted.server);
    const cookies = await request(mounted.base, '/blog/cookies.php');
    expect(cookies.headers['set-cookie']).toEqual(['a=1', 'b=2']);
    expect([cookies.headers['x-from-app'], cookies.headers['x-frame-options'], cookies.body]).toEqual([
      'yes',
      'SAMEORIGIN',
      'cookies',
    ]);
    expect(JSON.parse((await request(mounted.base, '/blog/show.php/a?x=1')).body)).toMatchObject({
      SCRIPT_NAME: '/blog/show.php',
      PATH_INFO: '/a',
      REQUEST_URI: '/blog/show.php/a?x=1',
    });
    expect((await request(mounted.base, '/blog/style.css')).body).toBe('body { color: red }\n');
    const redirect = await request(mounted.base, '/blog/sub');
    expect([redirect.status, redirect.headers.location]).toEqual([301, '/blog/sub/']);
    const missing = await request(mounted.base, '/blog/nothing-here');
    expect([missing.status, missing.body]).toEqual([404, 'express fallthrough']);
    expect((await request(mounted.base, '/blog/.env')).status).toBe(403);
  });
});
