// The `fastcgi-engine` command as the benchmarks run it: the compiled twin next to the bench entry file, or the
// TypeScript under tsx; and `serve <app> --socket` started from it, resolved once it accepts connections.
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { canConnect, track, waitUntil } from './processes';
import { isCompiled, sourceRoot } from './report';

/** `node … fastcgi-engine` argv prefix for the bench whose entry file is `entryFile`. */
export function engineCli(entryFile: string): string[] {
  return isCompiled(entryFile)
    ? [join(dirname(entryFile), '../src/cli/main.js')]
    : ['--import', 'tsx', join(sourceRoot(entryFile), 'src/cli/main.ts')];
}

/** `fastcgi-engine serve <app> --socket <socket>`, tracked for clean-up; resolves once it listens. */
export async function startEngineServe(entryFile: string, app: string, socket: string): Promise<ChildProcess> {
  const server = track(
    spawn(process.execPath, [...engineCli(entryFile), 'serve', app, '--socket', socket], {
      stdio: ['ignore', 'ignore', 'pipe'],
    }),
  );
  let log = '';
  server.stderr!.on('data', (chunk: Buffer) => (log += chunk.toString()));
  await waitUntil(
    'fastcgi-engine serve',
    () => canConnect({ path: socket }),
    server,
    () => log,
  );
  return server;
}
