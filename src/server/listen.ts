// Where a FastCGI application listens: a socket handed over by the web server (fd 0, FastCGI 1.0 §2.2) or by
// systemd (LISTEN_FDS), a unix socket path (a stale file from a dead process is removed, a live one is not),
// or TCP. Errors name the cause and the fix, because the alternative is "premature end of script headers".
import cluster from 'node:cluster';
import { connect } from 'node:net';
import { closeSync, fstatSync, lstatSync, unlinkSync } from 'node:fs';
import { ErrorCode, ListenError } from '../errors';
import { LISTENSOCK_FILENO } from '../wire/constants';

/** The first fd systemd passes (sd_listen_fds(3): SD_LISTEN_FDS_START). */
const SD_LISTEN_FDS_START = 3;

/** How to run a FastCGI application, for errors that must tell a person what to do. */
export const HOW_TO_RUN = [
  'Run it in one of three ways:',
  '  1. spawned by the web server or a process manager, which passes a listening socket as fd 0',
  '     (lighttpd bin-path, Apache mod_fcgid, spawn-fcgi, supervisor [fcgi-program], systemd socket activation);',
  "  2. on a unix socket the web server connects to: server.listen('/run/app.sock');",
  "  3. on a TCP port: server.listen(9000, '127.0.0.1').",
].join('\n');

/** isSocketFd tells whether `fd` is open and a socket (a listening one, when a web server passed it). */
export function isSocketFd(fd: number): boolean {
  try {
    return fstatSync(fd).isSocket();
  } catch {
    return false;
  }
}

/**
 * inheritedListenFd returns the fd of a listening socket this process inherited: systemd's first fd when
 * LISTEN_PID names this process, else fd 0 when it is a socket. Throws ListenError (with how to run the
 * application) when there is none.
 */
export function inheritedListenFd(env: NodeJS.ProcessEnv = process.env): number {
  if (env.LISTEN_PID !== undefined && Number(env.LISTEN_PID) === process.pid && Number(env.LISTEN_FDS) >= 1) {
    return SD_LISTEN_FDS_START;
  }
  let kind: string;
  try {
    const stat = fstatSync(LISTENSOCK_FILENO);
    if (stat.isSocket()) return LISTENSOCK_FILENO;
    kind = stat.isFIFO()
      ? 'a pipe'
      : stat.isCharacterDevice()
        ? 'a terminal or device'
        : stat.isFile()
          ? 'a file'
          : 'not a socket';
  } catch {
    kind = 'closed';
  }
  throw new ListenError(
    ErrorCode.INHERITED_SOCKET,
    `listen() with no address expects a listening socket on fd 0 (FCGI_LISTENSOCK_FILENO), but fd 0 is ${kind}: this process was not started by a web server.\n${HOW_TO_RUN}`,
  );
}

const releasedAtExit = new Set<number>();

/**
 * releaseAtExit closes `fd` as the process exits, when it is a stdio fd (the web server's socket on fd 0).
 * Node restores at exit the O_NONBLOCK flag its stdio fds had when it started, and a process manager starts
 * the application with the socket blocking; the flag belongs to the socket, shared by every process listening
 * on it, so one process exiting would leave a blocking socket to the others (supervisord numprocs, spawn-fcgi
 * -F, the rest of a rolling restart), and the one that loses the race for a connection then sleeps in accept()
 * serving nothing. Node skips the restore for a closed fd. (A signal with no handler still restores it.)
 */
export function releaseAtExit(fd: number): void {
  if (fd > 2 || releasedAtExit.has(fd)) return;
  releasedAtExit.add(fd);
  process.once('exit', () => {
    try {
      closeSync(fd);
    } catch {
      // Already closed.
    }
  });
}

/** The error for fd 0 being a socket that is connected rather than listening (a shell wrapper replaced it). */
export function connectedFdError(fd: number, cause: Error): ListenError {
  return new ListenError(
    ErrorCode.INHERITED_SOCKET,
    `fd ${fd} is a connected socket, not a listening one: a wrapper script probably redirected stdin (use \`exec node app.js\` and leave fd 0 alone), or this is a CGI, not a FastCGI, spawn.\n${HOW_TO_RUN}`,
    { cause },
  );
}

/**
 * checksStaleSocket says whether listen(path) must check the path for a stale socket file first: not in a
 * node:cluster worker (unless `exclusive`), because there the primary binds the address and shares it
 * (round-robin or handle passing), so the file is the primary's live socket, not a leftover to remove; an
 * exclusive listen binds in the worker itself, like any process.
 */
export function checksStaleSocket(exclusive: boolean, isWorker: boolean = cluster.isWorker): boolean {
  return !isWorker || exclusive;
}

/**
 * prepareSocketPath makes `path` free for listen(): nothing there is fine; a socket file that refuses
 * connections is left over from a dead process and is removed; a socket something answers on, or any other
 * kind of file, is an error (removing it would steal another process's address or delete data).
 */
export async function prepareSocketPath(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return;
  }
  if (!isSocket) {
    throw new ListenError(ErrorCode.ADDRESS_IN_USE, `${path} exists and is not a socket; refusing to replace it`);
  }
  const alive = await new Promise<boolean>((resolve) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', (error: NodeJS.ErrnoException) =>
      resolve(error.code !== 'ECONNREFUSED' && error.code !== 'ENOENT'),
    );
  });
  if (alive) throw new ListenError(ErrorCode.ADDRESS_IN_USE, `another process is listening on ${path}`);
  try {
    unlinkSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}
