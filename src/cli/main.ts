#!/usr/bin/env node
// fastcgi-engine: one executable, five subcommands (serve, request, bench, php-server, status). Each subcommand module exports
// run(argv) → exit code; argument mistakes are UsageErrors and exit 2 with a pointer to --help.
import { EXIT_USAGE, UsageError } from './args';

const USAGE = `Usage: fastcgi-engine <command> [options]

Commands:
  serve <module>      run a Node handler (http (req,res), Express, Koa or fetch) as a FastCGI application
  request <address>   send one FastCGI request and print the response (cgi-fcgi done right), --trace for records
  bench <address>     load-test a FastCGI backend (closed or open loop, HDR latency percentiles)
  php-server          serve a PHP site over HTTP: static files, php-fpm (its own or --upstream), pretty URLs
  status <address>    print a FastCGI application's status page (serve --status-path, php-fpm's pm.status_path)

Run 'fastcgi-engine <command> --help' for the options of a command.`;

type Command = (argv: string[]) => Promise<number>;

// Each command's module is loaded only when it runs. Loading all five made a `serve` process's heap larger by
// code it never runs, and on 1 MB uploads that process then ran 80-98 mark-compact collections in 3 s instead of
// 1-14 (node --trace-gc; the same handler answered 559 instead of 724 req/s): an application server carries only
// what it serves with.
// require(), not import(): this package is CommonJS, and a dynamic import() of a sibling would go through the
// ES module loader (and need the emitted file's extension, which the TypeScript test loader does not map).
/* eslint-disable @typescript-eslint/no-require-imports */
const COMMANDS: Record<string, () => Command> = {
  serve: () => (require('./serve') as typeof import('./serve')).run,
  request: () => (require('./request') as typeof import('./request')).run,
  bench: () => (require('./bench') as typeof import('./bench')).run,
  'php-server': () => (require('./php-server') as typeof import('./php-server')).run,
  status: () => (require('./status') as typeof import('./status')).run,
};
/* eslint-enable @typescript-eslint/no-require-imports */

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    (name === undefined ? process.stderr : process.stdout).write(`${USAGE}\n`);
    return name === undefined ? EXIT_USAGE : 0;
  }
  const load = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (load === undefined) {
    process.stderr.write(`fastcgi-engine: unknown command '${name}'\n\n${USAGE}\n`);
    return EXIT_USAGE;
  }
  const command = load();
  try {
    return await command(rest);
  } catch (error) {
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true) {
      process.stderr.write(
        `fastcgi-engine ${name}: ${(error as Error).message}\nRun 'fastcgi-engine ${name} --help' for usage.\n`,
      );
      return EXIT_USAGE;
    }
    throw error;
  }
}

// Sets process.exitCode rather than calling exit(), so stdout is flushed and long-running commands (serve)
// keep going: a command that serves returns only when it is done.
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(
      `fastcgi-engine: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exitCode = 1;
  },
);
