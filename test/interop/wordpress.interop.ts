// WordPress (Debian's `wordpress` package, 6.1) on a private MariaDB, through createPhpFrontEnd inside Express
// and through nginx's usual PHP server block, both on one php-fpm run by PhpFpmSupervisor (php-server's): install,
// log in, the dashboard, publish a post and upload a PNG through the REST API as the block editor does, fetch
// the upload back as a static file, switch to pretty permalinks with the settings form and read the post at
// /<slug>/ (try_files to index.php), /?p=ID redirected there, /wp-json/, the front page, a static asset,
// wp-config.php run and never sent, log out. Each step's status, Location and body marker compared with nginx's.
import express from 'express';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPhpFrontEnd, type PhpFrontEnd } from '../../src/php/front-end';
import { PhpFpmSupervisor } from '../../src/php/php-fpm-supervisor';
import { findBinary, freePort, type Proc, processStates, REQUIRED } from './harness';
import { startNginx } from './php-nginx';
import {
  comparable,
  HAVE_WORDPRESS,
  logTail,
  PNG,
  POST_SLUG,
  POST_TITLE,
  type Step,
  view,
  Visitor,
  WORDPRESS_PACKAGES,
  WordPressSite,
} from './wordpress-site';

const NGINX = findBinary('nginx');
const HAVE = HAVE_WORDPRESS && NGINX !== null;

/** Everything a visitor does, the same on both front ends; every answer is recorded by the Visitor. */
async function walk(port: number, report: () => string): Promise<Step[]> {
  const v = new Visitor(port, { report });
  await v.install();
  await v.logIn();
  const dashboard = await v.go('dashboard', '/wp-admin/', { marker: 'Dashboard' });
  expect(dashboard.marked, 'dashboard').toBe(true);
  await v.go('wp-admin without its slash', '/wp-admin');

  // Publishing as WordPress 6.1 itself does: post-new.php opens the block editor (the classic form only
  // appears when a plugin turns it off), which saves through the REST API with the login cookie and the nonce
  // the page gave it (wp.apiFetch.createNonceMiddleware: the wp_rest nonce, as wpApiSettings.nonce). Plain
  // permalinks are still on, so the route goes in ?rest_route=, as WordPress's own rest_url() gives it.
  const editor = await v.go('post-new.php', '/wp-admin/post-new.php', { marker: 'createNonceMiddleware' });
  const nonce = /createNonceMiddleware\( "([0-9a-f]+)" \)/.exec(editor.text)?.[1];
  expect(nonce, 'the REST nonce in post-new.php').toBeDefined();
  const published = await v.go('publish a post (REST)', '/?rest_route=/wp/v2/posts', {
    json: {
      title: POST_TITLE,
      content: '<!-- wp:paragraph --><p>Body of the walk.</p><!-- /wp:paragraph -->',
      status: 'publish',
    },
    headers: { 'X-WP-Nonce': nonce! },
    marker: POST_TITLE,
  });
  expect(published.status, published.text).toBe(201);
  const post = JSON.parse(published.text) as { id: number; slug: string; status: string };
  expect([post.slug, post.status]).toEqual([POST_SLUG, 'publish']);

  // The upload as the editor's media library sends it; named per port since both sites share wp-content.
  const uploaded = await v.go('upload a PNG (REST)', '/?rest_route=/wp/v2/media', {
    body: PNG,
    headers: {
      'X-WP-Nonce': nonce!,
      'Content-Type': 'image/png',
      'Content-Disposition': `attachment; filename="pixel-${port}.png"`,
    },
    marker: `pixel-${port}`,
  });
  expect(uploaded.status, uploaded.text).toBe(201);
  const media = JSON.parse(uploaded.text) as { source_url: string; mime_type: string };
  expect(media.mime_type).toBe('image/png');
  const mediaUrl = new URL(media.source_url);
  expect(mediaUrl.pathname).toMatch(new RegExp(`^/wp-content/uploads/\\d{4}/\\d{2}/pixel-${port}\\.png$`));
  const image = await v.go('the upload as a static file', mediaUrl.pathname);
  expect(image.status).toBe(200);
  expect(image.headers['content-type']).toBe('image/png');
  expect(image.body.equals(PNG), 'the uploaded bytes come back').toBe(true);

  const front = await v.go('front page lists the post', '/', { marker: `<h1>${POST_TITLE}</h1>` });
  expect([front.marked, front.text.includes(view('list'))], 'the post on the front page').toEqual([true, true]);

  // Pretty permalinks: /<slug>/ names no file, so it reaches index.php through try_files (the front
  // controller), with REQUEST_URI as asked, from which WordPress finds the post.
  await v.prettyPermalinks();
  const pretty = await v.go('the post at its pretty URL', `/${POST_SLUG}/`, {
    marker: `${view(`single ${post.id}`)}<article><h1>${POST_TITLE}`,
  });
  expect([pretty.status, pretty.marked], 'the pretty URL').toEqual([200, true]);
  const old = await v.go('the post by ID', `/?p=${post.id}`);
  expect([old.status, old.location]).toEqual([301, `http://127.0.0.1:PORT/${POST_SLUG}/`]);
  await v.go('the pretty URL without its slash', `/${POST_SLUG}`);
  const search = await v.go('a pretty search URL', '/search/interop+walk/', {
    marker: `${view('search')}<article><h1>${POST_TITLE}`,
  });
  expect(search.marked, 'the search finds the post').toBe(true);
  const api = await v.go('the REST API at /wp-json/', `/wp-json/wp/v2/posts/${post.id}`, { marker: POST_TITLE });
  expect([api.status, api.marked], '/wp-json/ through the front controller').toEqual([200, true]);
  const missing = await v.go('a missing page', '/no-such-page/', { marker: view('404') });
  expect([missing.status, missing.marked]).toEqual([404, true]);

  await v.go('hello world', '/hello-world/', { marker: view('single 1') });
  await v.go('a static asset', '/wp-includes/css/dashicons.min.css', { marker: 'dashicons' });
  const config = await v.go('wp-config.php', '/wp-config.php');
  expect(config.text, 'wp-config.php is run, never sent').not.toContain('DB_NAME');
  await v.go('readme.html', '/readme.html', { marker: 'WordPress' });
  const logout = /action=logout(?:&amp;|&|&#038;)_wpnonce=([0-9a-f]+)/.exec(dashboard.text)?.[1];
  expect(logout).toBeDefined();
  // Not sent twice: a first try that logged out would make the second fail its nonce check.
  await v.go('log out', `/wp-login.php?action=logout&_wpnonce=${logout}`, { retry: false });
  const after = await v.go('wp-admin logged out', '/wp-admin/');
  expect(after.status).toBe(302);
  return v.steps;
}

describe.runIf(HAVE || REQUIRED)('WordPress through createPhpFrontEnd and through nginx', () => {
  let wp: WordPressSite;
  let fpm: PhpFpmSupervisor;
  let nginx: Proc;
  let nginxPort: number;
  let frontEnd: PhpFrontEnd;
  let server: http.Server;
  let nginxDir: string;

  /** The logs and process states of every server behind a step that failed, read as it failed. */
  const report = (): string =>
    [
      logTail('nginx error.log', path.join(nginxDir, 'error.log')),
      logTail('php-fpm', path.join(wp.dir, 'fpm.log')),
      `--- nginx and php-fpm processes\n${processStates([nginx.pid, fpm.pid ?? 0])}`,
      wp.report(),
    ].join('\n');

  beforeAll(async () => {
    if (!HAVE) throw new Error(`needs MariaDB, WordPress and nginx (${WORDPRESS_PACKAGES} nginx-light)`);
    wp = await WordPressSite.start('wordpress');
    nginxPort = await freePort();
    const ourPort = await freePort();
    wp.createDatabase(nginxPort);
    wp.createDatabase(ourPort);
    fpm = new PhpFpmSupervisor({ log: fs.createWriteStream(path.join(wp.dir, 'fpm.log')) });
    await fpm.start();
    nginxDir = path.join(wp.dir, 'nginx');
    fs.mkdirSync(nginxDir);
    nginx = await startNginx(nginxDir, nginxPort, wp.root, fpm.socketPath);
    frontEnd = createPhpFrontEnd({ root: wp.root, upstream: fpm.address, logger: { warn: () => {}, error: () => {} } });
    const app = express();
    app.use((_req, res, next) => {
      res.setHeader('X-Frame-Options', 'SAMEORIGIN');
      next();
    });
    app.use(frontEnd);
    server = http.createServer(app);
    await new Promise<void>((resolve) => server.listen(ourPort, '127.0.0.1', resolve));
    expect((server.address() as AddressInfo).port).toBe(ourPort);
  }, 120_000);

  afterAll(async () => {
    server?.close();
    await frontEnd?.close();
    await nginx?.stop('SIGTERM', 5000);
    await fpm?.stop();
    await wp?.stop();
  }, 60_000);

  it(
    'install, log in, publish, upload, pretty permalinks, static files, log out: the same answers as nginx',
    // Two walks, and room for one stalled GET's report and second try (Visitor).
    { timeout: 180_000 },
    async () => {
      const theirs = await walk(nginxPort, report);
      const ours = await walk((server.address() as AddressInfo).port, report);
      expect(comparable(ours)).toEqual(comparable(theirs));
    },
  );
});
