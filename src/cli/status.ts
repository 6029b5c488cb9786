// `fastcgi-engine status <address>`: fetches a FastCGI application's status page over FastCGI and prints it:
// `serve --status-path`'s, or php-fpm's own (pm.status_path), whose field names ours follow.
import { parseArgs } from 'node:util';
import { createClient } from '../index';
import { UsageError, parseAddress, parseDuration } from './args';

const HELP = `Usage: fastcgi-engine status <address> [options]

Fetches the status page of a FastCGI application and prints it: the page of 'fastcgi-engine serve
--status-path', or php-fpm's own (pm.status_path), whose field names it shares where they mean the same.

<address>: /path/to.sock, unix:/path, host:port, tcp://host:port or a port (127.0.0.1).

Options:
  --path P               the status path (default /fcgi-status; php-fpm's pm.status_path, often /status)
  --json                 JSON instead of text
  --openmetrics          OpenMetrics (Prometheus) instead of text
  --full                 one entry per process (worker) too
  --script-filename F    SCRIPT_FILENAME (default: the path; php-fpm matches the status path there)
  --timeout T            give up after this long (default 10s)
  -h, --help             this text

Exit codes: 0 printed · 1 the page answered with a status other than 2xx · 2 bad arguments ·
3 could not connect or no answer in time.`;

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      path: { type: 'string' },
      json: { type: 'boolean' },
      openmetrics: { type: 'boolean' },
      full: { type: 'boolean' },
      'script-filename': { type: 'string' },
      timeout: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  if (positionals.length !== 1)
    throw new UsageError(
      positionals.length === 0 ? 'missing <address>' : `expected one address, got ${positionals.length} arguments`,
    );
  if (values.json === true && values.openmetrics === true)
    throw new UsageError('give --json or --openmetrics, not both');
  const address = parseAddress(positionals[0]);
  const path = values.path ?? '/fcgi-status';
  if (!path.startsWith('/')) throw new UsageError(`--path expects a path starting with /, got '${path}'`);
  const query = [
    values.json === true ? 'json' : values.openmetrics === true ? 'openmetrics' : null,
    values.full === true ? 'full' : null,
  ]
    .filter((q) => q !== null)
    .join('&');
  const timeout = parseDuration('timeout', values.timeout) ?? 10_000;
  const client = createClient({ address, requestTimeout: timeout, connectTimeout: timeout });
  try {
    // php-fpm answers its status page when SCRIPT_NAME (and, to get that far, SCRIPT_FILENAME) is the path.
    const response = await client.request({
      params: {
        REQUEST_METHOD: 'GET',
        REQUEST_URI: query === '' ? path : `${path}?${query}`,
        SCRIPT_NAME: path,
        SCRIPT_FILENAME: values['script-filename'] ?? path,
        QUERY_STRING: query,
        SERVER_PROTOCOL: 'HTTP/1.1',
        GATEWAY_INTERFACE: 'CGI/1.1',
        REMOTE_ADDR: '127.0.0.1',
        SERVER_SOFTWARE: 'fastcgi-engine-status',
      },
    });
    const body = await response.text();
    if (response.status < 200 || response.status > 299) {
      process.stderr.write(
        `fastcgi-engine status: ${address.label}${path} answered ${response.status}${body === '' ? '' : `:\n${body}`}\n`,
      );
      return 1;
    }
    process.stdout.write(body.endsWith('\n') || body === '' ? body : `${body}\n`);
    return 0;
  } catch (error) {
    process.stderr.write(`fastcgi-engine status: ${address.label}: ${(error as Error).message}\n`);
    return 3;
  } finally {
    await client.close();
  }
}
