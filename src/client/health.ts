// Active health checks: a FastCGI request to a ping path at an interval (php-fpm answers its `ping.path` with
// `pong` from a worker), judged by status and body. A TCP connect alone would pass a php-fpm whose master
// accepts while every worker is stuck. The check goes through the upstream's own pool, like a request: on a
// connection of its own it would wait in php-fpm's accept queue for as long as the pool's kept connections hold
// every worker, and fail a healthy backend.
import { Role } from '../wire/constants';
import { encodeParams } from '../wire/pairs';
import type { ResolvedHealthCheck } from './balancer-options';
import { EMPTY_BODY } from './body';
import { ClientRequest, type RequestSettings, type RequestSpec } from './client-request';
import type { ClientResponse } from './client-response';
import type { ResolvedClientOptions } from './options';
import type { Pool } from './pool';

/** Called after each check: null when it passed, else why it failed. */
export type HealthReport = (failure: string | null) => void;

/**
 * HealthProbe checks one upstream now and then every `check.interval` ms until stopped; a check is skipped
 * when `isEvidentlyUp()` says the upstream has just answered a request, which proves more than a ping would
 * (and a ping would only wait behind it for a connection).
 */
export class HealthProbe {
  readonly #check: ResolvedHealthCheck;
  readonly #report: HealthReport;
  readonly #isEvidentlyUp: () => boolean;
  readonly #pool: Pool;
  readonly #params: Buffer;
  readonly #settings: RequestSettings;
  #timer: NodeJS.Timeout | null = null;
  #running = false;
  #stopped = false;

  constructor(
    pool: Pool,
    check: ResolvedHealthCheck,
    options: ResolvedClientOptions,
    report: HealthReport,
    isEvidentlyUp: () => boolean,
  ) {
    this.#check = check;
    this.#report = report;
    this.#isEvidentlyUp = isEvidentlyUp;
    this.#pool = pool;
    this.#params = encodeParams(0, Object.entries(checkParams(check)), { pad: options.padRecords });
    this.#settings = {
      requestTimeout: check.timeout,
      bodyTimeout: check.timeout,
      maxHeaderBytes: options.maxHeaderBytes,
      maxStderrBytes: 0,
      highWaterMark: options.highWaterMark,
    };
  }

  /** Checks now, then at every interval. */
  start(): void {
    if (this.#stopped || this.#timer !== null) return;
    this.#timer = setInterval(onProbeTimer, this.#check.interval, this);
    this.#timer.unref();
    this.run();
  }

  /** @internal One check, unless the previous one is still running. */
  run(): void {
    if (this.#running || this.#stopped) return;
    if (this.#isEvidentlyUp()) return this.#report(null);
    this.#running = true;
    void this.#probe().then((failure) => {
      this.#running = false;
      if (!this.#stopped) this.#report(failure);
    });
  }

  /** Stops checking; a check under way ends with its pool. */
  stop(): void {
    this.#stopped = true;
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  async #probe(): Promise<string | null> {
    const spec: RequestSpec = {
      params: this.#params,
      role: Role.RESPONDER,
      body: EMPTY_BODY,
      data: null,
      signal: null,
      onStderr: null,
      replayable: false,
    };
    try {
      const response = await new Promise<ClientResponse>((resolve, reject) =>
        this.#pool.submit(new ClientRequest(spec, this.#settings, resolve, reject)),
      );
      return this.#judge(response, await response.text());
    } catch (error) {
      return (error as Error).message;
    }
  }

  #judge(response: ClientResponse, text: string): string | null {
    const check = this.#check;
    if (response.status !== check.status) return `${check.path} answered ${response.status}, not ${check.status}`;
    const body = check.body;
    if (body === null || (typeof body === 'string' ? text.includes(body) : text.search(body) !== -1)) return null;
    return `${check.path} answered ${JSON.stringify(text.slice(0, 80))}, which does not match ${String(body)}`;
  }
}

function onProbeTimer(probe: HealthProbe): void {
  probe.run();
}

/** The CGI params of a check request: what php-fpm's ping.path needs, then the configured ones. */
function checkParams(check: ResolvedHealthCheck): Record<string, string> {
  const at = check.path.indexOf('?');
  const script = at === -1 ? check.path : check.path.slice(0, at);
  return {
    GATEWAY_INTERFACE: 'CGI/1.1',
    SERVER_PROTOCOL: 'HTTP/1.1',
    REQUEST_METHOD: 'GET',
    SCRIPT_NAME: script,
    SCRIPT_FILENAME: script,
    DOCUMENT_URI: script,
    REQUEST_URI: check.path,
    QUERY_STRING: at === -1 ? '' : check.path.slice(at + 1),
    ...check.params,
  };
}
