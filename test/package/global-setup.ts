// The tarballs the install tests install: the release tarball, and the same without its prebuilds folder.
//
// FASTCGI_PACKAGE_TARBALL names a tarball made by the release command (CI makes it in its fresh clone with
// `npm run prebuild && npm pack`). Without it, the same commands run in a copy of this work tree (tracked and
// untracked files, as git sees them), so the checkout's dist/, build/ and prebuilds/ are neither used nor
// changed while others work in it.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { TestProject } from 'vitest/node' with { 'resolution-mode': 'import' };

declare module 'vitest' {
  export interface ProvidedContext {
    /** The release tarball. */
    tarball: string;
    /** The release tarball with package/prebuilds removed. */
    tarballWithoutPrebuilds: string;
  }
}

const ROOT = resolve(__dirname, '../..');

function packFromCopy(work: string): string {
  const stage = join(work, 'stage');
  const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
    cwd: ROOT,
    encoding: 'utf8',
  })
    .split('\0')
    .filter((f) => f !== '' && existsSync(join(ROOT, f)));
  for (const f of files) {
    mkdirSync(dirname(join(stage, f)), { recursive: true });
    cpSync(join(ROOT, f), join(stage, f));
  }
  symlinkSync(join(ROOT, 'node_modules'), join(stage, 'node_modules'), 'dir');
  execFileSync('npm', ['run', 'prebuild'], { cwd: stage, stdio: ['ignore', 'pipe', 'pipe'] });
  execFileSync('npm', ['pack', '--pack-destination', work], { cwd: stage, stdio: ['ignore', 'pipe', 'pipe'] });
  return join(
    work,
    readdirSync(work).find((f) => f.endsWith('.tgz'))!,
  );
}

export default function setup(project: TestProject): () => void {
  const work = mkdtempSync(join(tmpdir(), 'fastcgi-engine-pack-'));
  const given = process.env.FASTCGI_PACKAGE_TARBALL;
  const tarball = given ? resolve(given) : packFromCopy(work);
  if (!existsSync(tarball)) throw new Error(`FASTCGI_PACKAGE_TARBALL=${given}: no such file`);

  const unpacked = join(work, 'unpacked');
  mkdirSync(unpacked);
  execFileSync('tar', ['-xzf', tarball, '-C', unpacked]);
  rmSync(join(unpacked, 'package', 'prebuilds'), { recursive: true, force: true });
  const tarballWithoutPrebuilds = join(work, 'without-prebuilds', 'fastcgi-engine-without-prebuilds.tgz');
  mkdirSync(dirname(tarballWithoutPrebuilds));
  execFileSync('tar', ['-czf', tarballWithoutPrebuilds, '-C', unpacked, 'package']);

  project.provide('tarball', tarball);
  project.provide('tarballWithoutPrebuilds', tarballWithoutPrebuilds);
  return () => rmSync(work, { recursive: true, force: true });
}
