#!/usr/bin/env node
// npm's install hook. Not plain `node-gyp-build`: with no prebuild for the platform it runs node-gyp, and a
// machine without Python, make or a C++ compiler (most production images) would then fail the whole
// `npm install`, although the engine runs without the addon on its TypeScript scanner. So: use a prebuild or
// an earlier build that loads; else build when a toolchain is there; else say why in one line and exit 0.
// The reason is left in build/native-unavailable.txt, where the loader reads it for
// codec.nativeUnavailableReason. FASTCGI_REQUIRE_NATIVE=1 makes a missing addon an install error instead.
'use strict';
const { spawnSync } = require('node:child_process');
const { existsSync, mkdirSync, rmSync, writeFileSync } = require('node:fs');
const { delimiter, join, relative } = require('node:path');

const root = join(__dirname, '..');
const buildDir = join(root, 'build');
const reasonFile = join(buildDir, 'native-unavailable.txt');
const logFile = join(buildDir, 'native-build.log');

function isSet(name) {
  const value = process.env[name];
  return value !== undefined && value !== '' && value !== '0' && value.toLowerCase() !== 'false';
}

const required = isSet('FASTCGI_REQUIRE_NATIVE');

function say(line) {
  process.stderr.write(`fastcgi-engine: ${line}\n`);
}

function firstLine(error) {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n')[0].trim();
}

/**
 * The addon node-gyp-build would load (build/ first, then prebuilds/), or null when there is none for this
 * platform; and why it does not load, when it does not.
 */
function probe() {
  const load = require('node-gyp-build');
  let file;
  try {
    file = load.path(root);
  } catch (error) {
    return { file: null, error };
  }
  try {
    require(file);
    return { file, error: null };
  } catch (error) {
    return { file, error };
  }
}

function onPath(command) {
  if (command.includes('/')) return existsSync(command);
  return (process.env.PATH || '').split(delimiter).some((dir) => dir !== '' && existsSync(join(dir, command)));
}

// What node-gyp needs, looked up the way it looks: an explicit setting first, then the usual names. Checked
// before running it, because without them it fails only after a long search, with a page of gyp ERR! lines.
function missingTools() {
  // Windows builds with Visual Studio, which node-gyp finds by itself; there, its own error tells.
  if (process.platform === 'win32') return [];
  const missing = [];
  const python = process.env.npm_config_python || process.env.PYTHON;
  if (!(python ? onPath(python) : onPath('python3') || onPath('python'))) missing.push(python || 'python3');
  const make = process.env.npm_config_make || 'make';
  if (!onPath(make)) missing.push(make);
  const cxx = (process.env.CXX || '').split(' ')[0];
  if (!(cxx ? onPath(cxx) : onPath('c++') || onPath('g++') || onPath('clang++'))) missing.push(cxx || 'c++');
  return missing;
}

// npm names its bundled node-gyp for the scripts it runs; outside npm, one on PATH will do.
function nodeGypCommand() {
  const bundled = process.env.npm_config_node_gyp;
  if (bundled && existsSync(bundled)) return [process.execPath, bundled];
  return onPath('node-gyp') ? ['node-gyp'] : null;
}

function platformName() {
  const libc = process.platform === 'linux' ? (existsSync('/etc/alpine-release') ? ' musl' : ' glibc') : '';
  return `${process.platform}-${process.arch}${libc}`;
}

/** Builds from source; returns null on success, else why not (the build's output goes to the log file). */
function buildFromSource() {
  const command = nodeGypCommand();
  if (command === null) return 'node-gyp not found';
  const result = spawnSync(command[0], [...command.slice(1), 'rebuild'], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  const output = `${result.stdout || ''}${result.stderr || ''}${result.error ? `${result.error.message}\n` : ''}`;
  // node-gyp rebuild empties build/ first, so the log is written after it.
  mkdirSync(buildDir, { recursive: true });
  writeFileSync(logFile, output);
  if (result.status === 0) return null;
  return `node-gyp rebuild failed (exit ${result.status === null ? result.signal : result.status}; log: ${relative(process.cwd(), logFile)})`;
}

function main() {
  rmSync(reasonFile, { force: true });
  const found = probe();
  if (found.error === null) {
    say(`native scanner ready: ${relative(root, found.file)}`);
    return 0;
  }
  const loadError = found.error;
  // A prebuild that exists but does not load (a glibc too old, say) is reported as such, not as missing.
  const noPrebuild =
    found.file === null
      ? `no prebuilt addon for ${platformName()}`
      : `${relative(root, found.file)} does not load (${firstLine(loadError)})`;
  let why;
  if (isSet('FASTCGI_NO_NATIVE') && !required) {
    why = `${noPrebuild}, and FASTCGI_NO_NATIVE was set at install, so none was built`;
  } else {
    const missing = missingTools();
    if (missing.length > 0) {
      why = `${noPrebuild}, and none was built: node-gyp needs python3, make and a C++ compiler (missing: ${missing.join(', ')})`;
    } else {
      const failed = buildFromSource();
      if (failed === null) {
        const built = probe();
        if (built.error === null) {
          say(`native scanner built from source: ${relative(root, built.file)}`);
          return 0;
        }
        why = `${noPrebuild}; the addon built from source does not load: ${firstLine(built.error)}`;
      } else {
        why = `${noPrebuild}; ${failed}`;
      }
    }
  }
  if (required) {
    const detail = found.file === null ? ` (${firstLine(loadError)})` : '';
    say(`FASTCGI_REQUIRE_NATIVE is set and the native scanner is unavailable: ${why}${detail}`);
    return 1;
  }
  mkdirSync(buildDir, { recursive: true });
  writeFileSync(reasonFile, `${why}\n`);
  say(`${why}; the engine will use its TypeScript scanner`);
  return 0;
}

process.exitCode = main();
