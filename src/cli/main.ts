#!/usr/bin/env node
// fastcgi-engine: one executable, five subcommands (serve, request, bench, php-server, status). Each subcommand module exports
// run(argv) → exit code; argument mistakes are UsageErrors and exit 2 with a pointer to --help.
import { EXIT_USAGE, UsageError } from './args';
import { run as bench } from './bench';
import { run as phpServer } from './php-server';
import { run as request } from './request';
import { run as serve } from './serve';
import { run as status } from './status';

const USAGE = `Usage: fastcgi-engine <command> [options]

Commands:
  serve <module>      run a Node handler (http (req,res), Express, Koa or fetch) as a FastCGI application
  request <address>   send one FastCGI request and print the response (cgi-fcgi done right), --trace for records
  bench <address>     load-test a FastCGI backend (closed or open loop, HDR latency percentiles)
  php-server          serve a PHP site over HTTP: static files, php-fpm (its own or --upstream), pretty URLs
  status <address>    print a FastCGI application's status page (serve --status-path, php-fpm's pm.status_path)

Run 'fastcgi-engine <command> --help' for the options of a command.`;

type Command = (argv: string[]) => Promise<number>;

const COMMANDS: Record<string, Command> = { serve, request, bench, 'php-server': phpServer, status };

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    (name === undefined ? process.stderr : process.stdout).write(`${USAGE}\n`);
    return name === undefined ? EXIT_USAGE : 0;
  }
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (command === undefined) {
    process.stderr.write(`fastcgi-engine: unknown command '${name}'\n\n${USAGE}\n`);
    return EXIT_USAGE;
  }
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
