// The release tarball without its prebuilds folder, installed on a PATH with node and npm only: the state of
// any platform the package has no prebuild for, on a machine with no toolchain. The install must finish with
// one line saying why, and the engine must serve on its TypeScript scanner.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Consumer, freePort, httpRequest, lines } from './consumer';

const tarball = inject('tarballWithoutPrebuilds');
const WHY =
  'no prebuilt addon for linux-x64 glibc, and none was built: node-gyp needs python3, make and a C++ compiler (missing: python3, make, c++)';

describe('installed without prebuilds on a PATH with node and npm only', () => {
  let consumer: Consumer;

  beforeAll(() => {
    consumer = new Consumer('no-prebuild');
    consumer.installTarball(tarball);
  });
  afterAll(() => consumer?.remove());

  it('finishes the install, with one line saying why there is no addon', () => {
    const { status, stdout, stderr } = consumer.install;
    for (const l of lines(stdout + stderr, /fastcgi-engine|added \d+ packages|ERR/)) console.log(`[npm install] ${l}`);
    expect(status, stderr).toBe(0);
    expect(lines(stderr, /^fastcgi-engine:/)).toEqual([
      `fastcgi-engine: ${WHY}; the engine will use its TypeScript scanner`,
    ]);
    expect(stdout + stderr).not.toMatch(/gyp ERR!/);
    expect(existsSync(join(consumer.pkg, 'prebuilds'))).toBe(false);
  });

  it('runs on the TypeScript scanner, silent at run time, with the reason in codec.nativeUnavailableReason', () => {
    const probe = consumer.node([
      '-e',
      "const { codec } = require('fastcgi-engine'); console.log(JSON.stringify(codec))",
    ]);
    console.log(`[require] ${probe.stdout.trim()}`);
    expect(probe.stderr).toBe('');
    expect(JSON.parse(probe.stdout)).toMatchObject({ implementation: 'typescript', nativeUnavailableReason: WHY });
  });

  it('turns the missing addon into an error with FASTCGI_REQUIRE_NATIVE=1, at run time and at install', () => {
    const run = consumer.node(['-e', "require('fastcgi-engine')"], { FASTCGI_REQUIRE_NATIVE: '1' });
    expect(run.status).not.toBe(0);
    expect(run.stderr).toMatch(
      /NativeLoadError: FASTCGI_REQUIRE_NATIVE is set but the native scanner did not load: no prebuilt addon/,
    );
    expect(run.stderr).toMatch(/code: 'FCGI_ERR_NATIVE_LOAD'/);
    // `npm rebuild` runs the same install script the install ran.
    const rebuild = consumer.run('npm', ['rebuild', '--foreground-scripts', 'fastcgi-engine'], {
      FASTCGI_REQUIRE_NATIVE: '1',
    });
    console.log(
      `[FASTCGI_REQUIRE_NATIVE=1 npm rebuild] exit ${rebuild.status}: ${lines(rebuild.stderr, /^fastcgi-engine:/).join(' ')}`,
    );
    expect(rebuild.status).not.toBe(0);
    expect(rebuild.stderr).toMatch(
      /^fastcgi-engine: FASTCGI_REQUIRE_NATIVE is set and the native scanner is unavailable: no prebuilt addon/m,
    );
  });

  it('answers a request: an app on the engine, behind `npx fastcgi-engine serve --http`, and through its client', async () => {
    consumer.write(
      'app.cjs',
      "module.exports = (req, res) => res.end(`hello from ${req.url} on ${require('fastcgi-engine').codec.implementation}\\n`);\n",
    );
    const socket = join(consumer.dir, 'app.sock');
    const port = await freePort();
    const served = await consumer.start(
      'npx',
      ['--no-install', 'fastcgi-engine', 'serve', 'app.cjs', '--socket', socket, '--http', String(port)],
      /HTTP gateway on/,
    );
    try {
      const body = await httpRequest(`http://127.0.0.1:${port}/upload?x=1`, 'x'.repeat(100_000));
      console.log(`[npx fastcgi-engine serve --http ${port}] POST /upload?x=1 → ${body.trim()}`);
      expect(body).toBe('hello from /upload?x=1 on typescript\n');
      const client = consumer.node([
        '-e',
        `const { createClient } = require('fastcgi-engine');
         const c = createClient({ address: ${JSON.stringify(socket)} });
         c.request({ params: { REQUEST_METHOD: 'GET', REQUEST_URI: '/via/client' } })
           .then(async (r) => { console.log(r.status, (await r.text()).trim()); await c.close(); });`,
      ]);
      console.log(`[createClient().request()] ${client.stdout.trim()}`);
      expect(client.stderr).toBe('');
      expect(client.stdout.trim()).toBe('200 hello from /via/client on typescript');
    } finally {
      served.stop();
    }
  });

  it('reports a prebuild that is there but does not load as such, at install and at run time', () => {
    const file = join(consumer.pkg, 'prebuilds', 'linux-x64', 'fastcgi-engine.glibc.node');
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, 'not an ELF file\n'.repeat(512));
    const rebuild = consumer.run('npm', ['rebuild', '--foreground-scripts', 'fastcgi-engine']);
    const said = lines(rebuild.stderr, /^fastcgi-engine:/);
    console.log(`[npm rebuild with a broken prebuild] exit ${rebuild.status}: ${said.join(' ')}`);
    expect(rebuild.status, rebuild.stderr).toBe(0);
    expect(said).toEqual([
      expect.stringMatching(
        /^fastcgi-engine: prebuilds\/linux-x64\/fastcgi-engine\.glibc\.node does not load \(.*invalid ELF header\), and none was built: .*TypeScript scanner$/,
      ),
    ]);
    const probe = consumer.node(['-e', "console.log(require('fastcgi-engine').codec.nativeUnavailableReason)"]);
    expect(probe.stderr).toBe('');
    expect(probe.stdout.trim()).toMatch(/fastcgi-engine\.glibc\.node: invalid ELF header$/);
  });
});
