// The fetch-API backend of the end-to-end benchmark: the module `fastcgi-engine serve` loads (the handler is
// shared with the other Node backends in ./e2e-handlers).
import { fetchHandler } from './e2e-handlers';

export default { fetch: fetchHandler };
