// The package entry `fastcgi-engine/node-fastcgi` (package.json exports, and the ESM wrapper next to it in
// dist/): the drop-in itself lives with the other server adapters.
export * from './server/node-fastcgi';
