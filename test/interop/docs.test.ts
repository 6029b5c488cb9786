// docs/deployment.md is generated from the recipes the interop suite runs; this fails when the committed file
// and the generator disagree (regenerate with `node scripts/gen-deploy-docs.mjs`). It needs no web server, so
// it runs in the default `npm test` too.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DOC_PATH, renderDeploymentDoc } from './docs';
import { placeholders, RECIPES, render } from './recipes';

const ROOT = path.resolve(__dirname, '../..');

describe('docs/deployment.md', () => {
  it('is what scripts/gen-deploy-docs.mjs generates from test/interop/recipes.ts', () => {
    const committed = fs.readFileSync(path.join(ROOT, DOC_PATH), 'utf8');
    const generated = renderDeploymentDoc();
    if (committed !== generated) {
      const a = committed.split('\n');
      const b = generated.split('\n');
      const line = a.findIndex((l, i) => l !== b[i]);
      expect.fail(
        `${DOC_PATH} differs from the generator at line ${line + 1}:\n  file:      ${JSON.stringify(a[line])}\n  generated: ${JSON.stringify(b[line])}\nRun: node scripts/gen-deploy-docs.mjs`,
      );
    }
  });

  it('every recipe renders with its doc values, and the suite fills the same placeholders', () => {
    for (const recipe of RECIPES) {
      const templates = [
        recipe.command,
        ...recipe.files.map((f) => f.template),
        ...(recipe.variants ?? []).map((v) => v.command),
      ];
      for (const template of templates) {
        expect(() => render(template, recipe.docValues), recipe.id).not.toThrow();
        // Only DIR is implicit (startRecipe sets it); every other placeholder has a documented value.
        for (const name of placeholders(template))
          expect(recipe.docValues[name], `${recipe.id}: {{${name}}}`).toBeDefined();
      }
      expect(recipe.notes.length, recipe.id).toBeGreaterThan(0);
    }
  });
});
