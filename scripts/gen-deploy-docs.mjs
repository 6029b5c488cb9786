#!/usr/bin/env node
// Writes docs/deployment.md from the recipes the interop suite runs (test/interop/recipes.ts, rendered by
// test/interop/docs.ts). `--check` writes nothing and exits 1 when the file differs (test/interop/docs.test.ts
// makes the same check in `npm test`).
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tsImport } from 'tsx/esm/api';

const root = fileURLToPath(new URL('..', import.meta.url));
const docs = await tsImport('../test/interop/docs.ts', import.meta.url);
const { renderDeploymentDoc, DOC_PATH } = docs.renderDeploymentDoc === undefined ? docs.default : docs;
const file = `${root}${DOC_PATH}`;
const text = renderDeploymentDoc();

if (process.argv.includes('--check')) {
  let current = '';
  try {
    current = readFileSync(file, 'utf8');
  } catch {
    // missing counts as different
  }
  if (current !== text) {
    console.error(`${DOC_PATH} is out of date: run node scripts/gen-deploy-docs.mjs`);
    process.exit(1);
  }
  console.log(`${DOC_PATH} is current`);
} else {
  writeFileSync(file, text);
  console.log(`wrote ${DOC_PATH}`);
}
