#!/usr/bin/env node
// `npm pack` / `npm publish` run this before `prepare` compiles dist/. It empties dist/, so files of deleted
// sources are not shipped, and refuses to pack without a current prebuild for each platform the README
// promises one for: a tarball without them installs everywhere, but on the TypeScript scanner, which nobody
// would notice. FASTCGI_PACK_WITHOUT_PREBUILDS=1 packs anyway (the install tests make such a tarball).
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const PLATFORMS = ['linux-x64', 'linux-arm64'];

function newestSource() {
  const files = ['binding.gyp'];
  for (const dir of ['native', join('native', 'generated')]) {
    for (const name of readdirSync(join(root, dir))) {
      if (/\.(cc|h)$/.test(name)) files.push(join(dir, name));
    }
  }
  return Math.max(...files.map((f) => statSync(join(root, f)).mtimeMs));
}

rmSync(join(root, 'dist'), { recursive: true, force: true });

const skip = process.env.FASTCGI_PACK_WITHOUT_PREBUILDS;
if (skip === undefined || skip === '' || skip === '0') {
  const sources = newestSource();
  const problems = [];
  for (const platform of PLATFORMS) {
    const dir = join(root, 'prebuilds', platform);
    const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.node')) : [];
    if (files.length === 0) problems.push(`no prebuild in ${relative(root, dir)}`);
    for (const f of files) {
      if (statSync(join(dir, f)).mtimeMs < sources)
        problems.push(`${relative(root, join(dir, f))} is older than the native sources`);
    }
  }
  if (problems.length > 0) {
    process.stderr.write(
      `prepack: ${problems.join('; ')}.\nRun \`npm run prebuild\` first (or FASTCGI_PACK_WITHOUT_PREBUILDS=1 to pack without them).\n`,
    );
    process.exit(1);
  }
}
