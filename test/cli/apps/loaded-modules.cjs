// A (req, res) app that answers with the engine modules its process has loaded (paths under src/, without
// extension), one per line: serve.test.ts checks that a process serving it loads only what it serves.
const { resolve, sep } = require('node:path');

const SRC = resolve(__dirname, '../../../src') + sep;

module.exports = (_req, res) => {
  const loaded = Object.keys(require.cache)
    .filter((path) => path.startsWith(SRC))
    .map((path) => path.slice(SRC.length).replace(/\.[cm]?[jt]s$/, ''));
  res.end(loaded.join('\n'));
};
