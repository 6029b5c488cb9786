#!/usr/bin/env node
// `npm run prebuild`, the release step before `npm pack` / `npm publish`: builds the prebuilt addons that the
// tarball ships, so that installing it needs no Python, make or C++ compiler on the platforms below.
//
// One N-API build per platform serves every Node version the engine supports (N-API is ABI-stable), so the
// Node that runs this script is the only target. linux-x64 is built with the host's g++; linux-arm64 with
// Debian's cross compiler (apt-get install g++-aarch64-linux-gnu). No musl build: Debian has no C++ toolchain
// for musl (musl-tools is C only), see README "Install".
//
// Each build runs prebuildify in a temp copy of the native sources, because node-gyp rebuilds in ./build:
// building in the checkout would leave an arm64 addon in build/Release, which node-gyp-build loads first.
//
//   node scripts/prebuild.mjs [--only linux-x64,linux-arm64]
import { spawnSync } from 'node:child_process';
import {
  closeSync,
  cpSync,
  existsSync,
  mkdtempSync,
  openSync,
  readSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The platforms the tarball carries a prebuild for; `machine` is the ELF e_machine the file must have. */
const TARGETS = [
  { name: 'linux-x64', arch: 'x64', machine: 62, tools: { cc: 'gcc', cxx: 'g++', strip: 'strip' } },
  {
    name: 'linux-arm64',
    arch: 'arm64',
    machine: 183,
    tools: { cc: 'aarch64-linux-gnu-gcc', cxx: 'aarch64-linux-gnu-g++', strip: 'aarch64-linux-gnu-strip' },
    apt: 'g++-aarch64-linux-gnu',
  },
];

// Node 20's own linux binaries need glibc 2.28; a prebuild that needed more would fail to load on some of the
// systems Node itself runs on, and those would silently fall back to TypeScript.
const MAX_GLIBC = [2, 28];

function fail(message) {
  process.stderr.write(`prebuild: ${message}\n`);
  process.exit(1);
}

function onPath(command) {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => dir !== '' && existsSync(join(dir, command)));
}

function elfMachine(file) {
  const fd = openSync(file, 'r');
  try {
    const header = Buffer.alloc(20);
    readSync(fd, header, 0, 20, 0);
    if (header.readUInt32BE(0) !== 0x7f454c46) return -1;
    return header.readUInt16LE(18);
  } finally {
    closeSync(fd);
  }
}

function compareVersions(a, b) {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) - (b[i] ?? 0);
  }
  return 0;
}

function glibcVersionsNeeded(file) {
  const result = spawnSync('readelf', ['--dyn-syms', '-W', file], { encoding: 'utf8' });
  if (result.status !== 0) return null;
  const versions = new Set(Array.from(result.stdout.matchAll(/@GLIBC_(\d+(?:\.\d+)+)/g), (m) => m[1]));
  return [...versions].map((v) => v.split('.').map(Number)).sort(compareVersions);
}

// node-gyp finds the headers through npm's nodedir setting when run by npm; run directly, it would try to
// download them, which an offline machine cannot. Node's own install carries them next to its binary.
function nodedir() {
  if (process.env.npm_config_nodedir) return process.env.npm_config_nodedir;
  const prefix = join(dirname(process.execPath), '..');
  return existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined;
}

// prebuildify runs node-gyp from node_modules/.bin, where this project has none: npm's own copy serves (npm
// names it in npm_config_node_gyp for scripts it runs).
function nodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    join(
      dirname(process.execPath),
      '..',
      'lib',
      'node_modules',
      'npm',
      'node_modules',
      'node-gyp',
      'bin',
      'node-gyp.js',
    ),
  ];
  const found = candidates.find((c) => c !== undefined && existsSync(c));
  if (found === undefined) fail('node-gyp not found: run this as `npm run prebuild`');
  return found;
}

function build(target) {
  const missing = Object.values(target.tools).filter((t) => !onPath(t));
  if (missing.length > 0) {
    fail(`${target.name}: ${missing.join(', ')} not found${target.apt ? ` (apt-get install ${target.apt})` : ''}`);
  }
  const work = mkdtempSync(join(tmpdir(), `fastcgi-engine-prebuild-${target.name}-`));
  let result;
  try {
    cpSync(join(root, 'binding.gyp'), join(work, 'binding.gyp'));
    cpSync(join(root, 'package.json'), join(work, 'package.json'));
    for (const entry of readdirSync(join(root, 'native'))) {
      if (entry === 'fuzz') continue;
      cpSync(join(root, 'native', entry), join(work, 'native', entry), { recursive: true });
    }
    // binding.gyp asks node-addon-api for its include dir, and prebuildify runs node-gyp from node_modules/.bin.
    symlinkSync(join(root, 'node_modules'), join(work, 'node_modules'), 'dir');
    const env = { ...process.env, CC: target.tools.cc, CXX: target.tools.cxx, LINK: target.tools.cxx };
    const dir = nodedir();
    if (dir !== undefined) env.npm_config_nodedir = dir;
    const args = [
      join(root, 'node_modules', 'prebuildify', 'bin.js'),
      '--napi',
      // The running Node's headers; without a target prebuildify names the newest Node it knows, whose headers
      // node-gyp would have to download.
      '--target',
      `node@${process.versions.node}`,
      '--node-gyp',
      nodeGyp(),
      '--strip',
      '--tag-libc',
      '--arch',
      target.arch,
      '--strip-bin',
      target.tools.strip,
      '--out',
      root,
      '--cwd',
      work,
    ];
    result = spawnSync(process.execPath, args, { cwd: work, env, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  if (result.status !== 0) {
    process.stderr.write(result.stdout + result.stderr);
    fail(`${target.name}: prebuildify exited ${result.status ?? result.signal}`);
  }
  const dir = join(root, 'prebuilds', target.name);
  const files = readdirSync(dir).filter((f) => f.endsWith('.node'));
  if (files.length !== 1)
    fail(`${target.name}: expected one .node file in ${relative(root, dir)}, found ${files.join(', ') || 'none'}`);
  const file = join(dir, files[0]);
  const machine = elfMachine(file);
  if (machine !== target.machine) fail(`${relative(root, file)}: ELF machine ${machine}, expected ${target.machine}`);
  const glibc = glibcVersionsNeeded(file);
  const newest = glibc?.at(-1);
  if (newest && compareVersions(newest, MAX_GLIBC) > 0) {
    fail(`${relative(root, file)} needs GLIBC_${newest.join('.')}, newer than Node 20's floor ${MAX_GLIBC.join('.')}`);
  }
  const needs = newest ? `, needs glibc >= ${newest.join('.')}` : '';
  console.log(`prebuild: ${relative(root, file)} (${statSync(file).size} bytes, ELF machine ${machine}${needs})`);
}

const onlyIndex = process.argv.indexOf('--only');
const only = onlyIndex === -1 ? null : (process.argv[onlyIndex + 1] ?? '').split(',');
const chosen = only === null ? TARGETS : TARGETS.filter((t) => only.includes(t.name));
if (chosen.length === 0) fail(`--only takes a list of ${TARGETS.map((t) => t.name).join(', ')}`);
if (process.platform !== 'linux' || process.arch !== 'x64') fail('the release prebuilds are made on linux-x64');

// Stale files from an earlier build (another name or tag) would be shipped next to the new ones.
for (const target of chosen) rmSync(join(root, 'prebuilds', target.name), { recursive: true, force: true });
for (const target of chosen) build(target);
