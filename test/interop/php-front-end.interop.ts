// createPhpFrontEnd next to nginx with the usual PHP server block (Debian's snippets/fastcgi-php.conf: try_files,
// fastcgi_split_path_info, deny dotfiles), both in front of the same php-fpm and file tree: status, key headers
// and bodies compared path by path.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPhpFrontEnd, type PhpFrontEnd } from '../../src/php/front-end';
import { PHP_FPM, PhpFpm } from '../client/php-fpm-harness';
import { COMPARED_PATHS, makeSite, type Site } from '../php/site';
import { findBinary, freePort, httpRequest, Proc, REQUIRED, removeDir, tempDir } from './harness';
import { startNginx } from './php-nginx';

const NGINX = findBinary('nginx');

function mediaType(value: string | undefined): string | undefined {
  return value?.split(';')[0]!.trim().toLowerCase();
}

describe.runIf((NGINX !== null && PHP_FPM !== null) || REQUIRED)('createPhpFrontEnd next to nginx', () => {
  let site: Site;
  let fpm: PhpFpm;
  let nginx: Proc;
  let dir: string;
  let nginxPort: number;
  let frontEnd: PhpFrontEnd;
  let server: http.Server;
  let ourPort: number;

  beforeAll(async () => {
    if (NGINX === null || PHP_FPM === null)
      throw new Error('nginx and php-fpm8.2 are needed: install nginx-light and php8.2-fpm');
    site = makeSite();
    fpm = new PhpFpm(PHP_FPM);
    await fpm.start();
    dir = tempDir('php-nginx');
    nginxPort = await freePort();
    nginx = await startNginx(dir, nginxPort, site.root, fpm.socketPath);
    frontEnd = createPhpFrontEnd({
      root: site.root,
      upstream: fpm.socketPath,
      logger: { warn: () => {}, error: () => {} },
    });
    server = http.createServer((req, res) => frontEnd(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    ourPort = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    server?.close();
    await frontEnd?.close();
    await nginx?.stop('SIGTERM', 5000);
    await fpm?.dispose();
    site?.dispose();
    if (dir !== undefined) removeDir(dir);
  });

  it.each(COMPARED_PATHS)('GET %s: same status, type and body', async (asked) => {
    const [theirs, ours] = await Promise.all([
      httpRequest({ port: nginxPort, path: asked }),
      httpRequest({ port: ourPort, path: asked }),
    ]);
    expect(ours.status, asked).toBe(theirs.status);
    if (theirs.status >= 400) return; // error pages differ in wording, not in meaning
    expect(ours.headers.location).toBe(theirs.headers.location);
    if (theirs.status !== 200) return;
    // The media type; send adds `; charset=UTF-8` to text types, nginx's default charset is off.
    expect(mediaType(ours.headers['content-type'])).toBe(mediaType(theirs.headers['content-type']));
    expect(ours.body.toString()).toBe(theirs.body.toString());
  });

  it('POST to a script and to the front controller: same answers', async () => {
    for (const asked of ['/show.php?x=1', '/some/page?x=2']) {
      const body = 'name=value&n=2';
      const headers = { 'Content-Type': 'application/x-www-form-urlencoded' };
      const [theirs, ours] = await Promise.all([
        httpRequest({ port: nginxPort, path: asked, body, headers }),
        httpRequest({ port: ourPort, path: asked, body, headers }),
      ]);
      expect([ours.status, ours.body.toString()]).toEqual([theirs.status, theirs.body.toString()]);
    }
  });

  it('a static file: same ETag-less validators (Last-Modified), range and 304 behaviour', async () => {
    const [theirs, ours] = await Promise.all([
      httpRequest({ port: nginxPort, path: '/data.bin', headers: { Range: 'bytes=100-199' } }),
      httpRequest({ port: ourPort, path: '/data.bin', headers: { Range: 'bytes=100-199' } }),
    ]);
    expect([ours.status, ours.headers['content-range'], ours.length]).toEqual([
      theirs.status,
      theirs.headers['content-range'],
      theirs.length,
    ]);
    expect(ours.headers['last-modified']).toBe(theirs.headers['last-modified']);
    const since = { 'If-Modified-Since': theirs.headers['last-modified']! };
    const [theirs304, ours304] = await Promise.all([
      httpRequest({ port: nginxPort, path: '/data.bin', headers: since }),
      httpRequest({ port: ourPort, path: '/data.bin', headers: since }),
    ]);
    expect(ours304.status).toBe(theirs304.status);
  });

  it('where nginx sends PHP source (a .PHP or .inc file), the front end refuses', async () => {
    for (const asked of ['/X.PHP', '/config.inc']) {
      const [theirs, ours] = await Promise.all([
        httpRequest({ port: nginxPort, path: asked }),
        httpRequest({ port: ourPort, path: asked }),
      ]);
      expect(theirs.body.toString(), 'nginx is expected to leak here').toContain('SOURCE-LEAK');
      expect([ours.status, ours.body.toString()]).toEqual([403, 'Forbidden\n']);
    }
  });
});
