// php-fpm for the benchmarks that put a PHP backend behind a front end (bench:client, bench:ab --handler gateway):
// a pool started from a temp dir, and the scripts every such row serves.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { canConnect, track, waitUntil } from './processes';

/** hello.php (12 bytes) and bytes.php?n=N (N bytes), both with Content-Length. */
export const PHP_SCRIPTS: Readonly<Record<string, string>> = {
  'hello.php': `<?php\nheader('Content-Type: text/plain');\nheader('Content-Length: 12');\necho "hello world\\n";\n`,
  'bytes.php': `<?php\n$n = (int)($_GET['n'] ?? 0);\nheader('Content-Type: application/octet-stream');\nheader('Content-Length: ' . $n);\necho str_repeat('ab', intdiv($n, 2)), $n % 2 ? 'a' : '';\n`,
};

/** Writes PHP_SCRIPTS into `docroot`. */
export function writePhpScripts(docroot: string): void {
  for (const [name, text] of Object.entries(PHP_SCRIPTS)) writeFileSync(join(docroot, name), text);
}

/** A php-fpm pool (a master and `children` static workers) on `<name>.sock` in `dir`. */
export async function startPhpFpm(
  binary: string,
  dir: string,
  children: number,
  name = 'php',
): Promise<{ child: ChildProcess; socket: string }> {
  const socket = join(dir, `${name}.sock`);
  const conf = join(dir, `${name}-fpm.conf`);
  writeFileSync(
    conf,
    [
      '[global]',
      `pid = ${join(dir, `${name}-fpm.pid`)}`,
      `error_log = ${join(dir, `${name}-fpm.log`)}`,
      'daemonize = no',
      `[${name}]`,
      `listen = ${socket}`,
      'listen.mode = 0666',
      'listen.backlog = 1024',
      'pm = static',
      `pm.max_children = ${children}`,
      'php_admin_flag[display_errors] = off',
      '',
    ].join('\n'),
  );
  // -n: no system php.ini (opcache off for every row alike); -R: root allowed.
  const child = track(spawn(binary, ['-F', '-R', '-n', '-y', conf], { stdio: ['ignore', 'ignore', 'pipe'] }));
  let log = '';
  child.stderr!.on('data', (chunk: Buffer) => (log += chunk.toString()));
  await waitUntil(
    'php-fpm',
    () => canConnect({ path: socket }),
    child,
    () => log,
  );
  return { child, socket };
}
