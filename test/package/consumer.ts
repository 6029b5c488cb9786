// A consumer project that installs the packed tarball, as a new user would, on a PATH that holds node, npm,
// npx and sh only: no python3, make, cc or c++, as in most production images. Everything the tests run in it
// goes through that PATH, so nothing from the checkout (its node_modules, its build/) can stand in.
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { request } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';

export const ROOT = resolve(__dirname, '../..');

function which(command: string): string {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const candidate = join(dir, command);
    if (dir !== '' && existsSync(candidate)) return realpathSync(candidate);
  }
  throw new Error(`${command} is not on PATH`);
}

/**
 * A directory to use as the whole PATH: node, npm and npx (npm's scripts find node through `env node`) and
 * sh, which npm runs lifecycle scripts with. Nothing else.
 */
export function nodeOnlyPath(dir: string): string {
  const bin = join(dir, 'bin');
  mkdirSync(bin, { recursive: true });
  symlinkSync(process.execPath, join(bin, 'node'));
  for (const tool of ['npm', 'npx']) symlinkSync(which(tool), join(bin, tool));
  symlinkSync('/bin/sh', join(bin, 'sh'));
  return bin;
}

export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function result(r: SpawnSyncReturns<string>): Run {
  return { status: r.status, stdout: r.stdout ?? '', stderr: `${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

export class Consumer {
  /** The consumer project. */
  readonly dir: string;
  /** The installed package: dir/node_modules/fastcgi-engine. */
  readonly pkg: string;
  readonly path: string;
  install: Run = { status: null, stdout: '', stderr: '' };
  private readonly base: string;

  constructor(label: string) {
    this.base = mkdtempSync(join(tmpdir(), `fastcgi-engine-consumer-${label}-`));
    this.path = nodeOnlyPath(this.base);
    this.dir = join(this.base, 'project');
    mkdirSync(this.dir);
    writeFileSync(
      join(this.dir, 'package.json'),
      `${JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }, null, 2)}\n`,
    );
    this.pkg = join(this.dir, 'node_modules', 'fastcgi-engine');
  }

  env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    // The engine's switches are cleared so that the caller's environment (CI sets FASTCGI_REQUIRE_NATIVE for
    // other steps) does not decide what a test sees.
    // npm's own variables (set when the tests run under `npm run`) and compiler settings are dropped too: the
    // consumer's npm must find its configuration and tools as a user's would.
    const env: NodeJS.ProcessEnv = {};
    for (const [key, value] of Object.entries(process.env)) {
      if (/^(npm_|FASTCGI_(NO|REQUIRE)_NATIVE$|PYTHON$|CC$|CXX$|INIT_CWD$)/i.test(key)) continue;
      env[key] = value;
    }
    return { ...env, PATH: this.path, ...extra };
  }

  /** `npm install <tarball>` with the install script's output shown, as npm --foreground-scripts shows it. */
  installTarball(tarball: string, env: Record<string, string> = {}): Run {
    this.install = this.run(
      'npm',
      ['install', '--no-audit', '--no-fund', '--foreground-scripts', '--prefer-offline', tarball],
      env,
      240_000,
    );
    return this.install;
  }

  run(command: string, args: string[], env: Record<string, string> = {}, timeout = 60_000): Run {
    return result(spawnSync(command, args, { cwd: this.dir, env: this.env(env), encoding: 'utf8', timeout }));
  }

  node(args: string[], env: Record<string, string> = {}): Run {
    return this.run('node', args, env);
  }

  write(name: string, text: string): string {
    const file = join(this.dir, name);
    writeFileSync(file, text);
    return file;
  }

  /** Starts a long-running command; resolves once `ready` matches its stderr, with a stop function and its output. */
  async start(command: string, args: string[], ready: RegExp): Promise<{ stop: () => void; output: () => string }> {
    const child = spawn(command, args, {
      cwd: this.dir,
      env: this.env(),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    const stop = () => {
      // npx runs the bin as a child: the whole process group goes.
      if (child.pid !== undefined && child.exitCode === null) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    };
    await new Promise<void>((resolveReady, reject) => {
      const timer = setTimeout(() => {
        stop();
        reject(new Error(`${command} ${args.join(' ')} not ready in 30 s: ${output}`));
      }, 30_000);
      child.stderr.on('data', (d: Buffer) => {
        output += d.toString();
        if (ready.test(output)) {
          clearTimeout(timer);
          resolveReady();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`${command} exited ${code} before it was ready: ${output}`));
      });
    });
    return { stop, output: () => output };
  }

  remove(): void {
    rmSync(this.base, { recursive: true, force: true });
  }
}

/** Lines of a transcript that contain `pattern`, for the test log. */
export function lines(text: string, pattern: RegExp): string[] {
  return text.split('\n').filter((l) => pattern.test(l));
}

/** A TCP port free a moment ago, for a command that takes a port number. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export function httpRequest(url: string, body?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: body === undefined ? 'GET' : 'POST' }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve(text));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}
