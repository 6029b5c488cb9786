// A/B: the server's CPU per request at two commits, side by side in one run. For a change whose gain is a few
// per cent, below what bench:e2e's run-to-run spread shows on a shared VM.
//
//   npm run bench:ab -- --base 9adc7a4                      base commit against the working tree
//   npm run bench:ab -- --base main~3 --head main --workload 64k --rounds 12
//   npm run bench:ab -- --base HEAD~1 --handler fetch --workload post-1m --node-flags="-r ./bench/apps/ballast.cjs"
//   npm run bench:ab -- --base HEAD~1 --handler gateway --workload 64k
//
// Each side is compiled from its commit (a git worktree in a temp dir, `tsc -p tsconfig.build.json`; the native
// addon is this checkout's build, so a change to native/ is not A/B'd here) and runs `fastcgi-engine serve` with
// the e2e handlers (bench/apps/e2e-handlers.ts, the working tree's: the `(req, res)` one, or with `--handler fetch`
// the fetch one; `--handler drop-in` serves the `(req, res)` one with the side's node-fastcgi drop-in instead) on
// a unix socket, under `node --node-flags` (e.g. the ballast that gives it an application-sized heap; split at
// spaces, so no flag value may hold one). The load is this checkout's `fastcgi-engine bench`,
// closed loop, with the 30 params nginx's fastcgi_params send (bench/_util/workloads.ts).
// `--handler gateway` A/Bs createGateway instead: each side runs bench/apps/gateway.ts (the front end bench:client
// measures) on its commit's dist, in front of one php-fpm pool both share (Debian's php8.2-fpm, 4 static workers,
// hello.php and bytes.php?n=4096|65536), loaded over HTTP by wrk (-t1, Debian's wrk); reported is the gateway
// process's CPU per request.
// Rounds alternate A,B then B,A. With taskset (util-linux) and two or more cores, the servers run on the last
// core and the load generator on the first, which took most of the spread out of these figures here.
// Reported: the server process's user+system CPU per request (/proc), each round, its median, the median of
// the per-round B/A ratios and the ratio of the best rounds.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import ts from 'typescript';
import { nginxParams } from './_util/workloads';
import { treeCpuSeconds } from './_util/proc-cpu';
import { canConnect, cleanUpOnExit, findBinary, killAll, stop, track, waitUntil } from './_util/processes';
import { sourceRoot } from './_util/report';
import { startPhpFpm, writePhpScripts } from './_util/php-fpm';
import { parseWrk } from './_util/wrk';

const ROOT = sourceRoot(__filename);
const WORKLOADS: Record<string, { uri: string; php: string | null; args: string[] }> = {
  hello: { uri: '/hello', php: '/hello.php', args: [] },
  '4k': { uri: '/4k', php: '/bytes.php?n=4096', args: [] },
  '64k': { uri: '/64k', php: '/bytes.php?n=65536', args: [] },
  'post-1m': { uri: '/echo', php: null, args: ['--method', 'POST', '--body-size', '1048576'] },
};
const PHP_CHILDREN = 4;

interface Side {
  label: string;
  dist: string;
  socket: string;
  server: ChildProcess | null;
  /** The gateway's HTTP port (--handler gateway). */
  port: number;
  samples: { us: number; rps: number }[];
}

function git(args: string[]): string {
  return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8' }).trim();
}

// Compiles `ref` into dir/dist (null: the working tree as it is).
function build(ref: string | null, dir: string): string {
  const source = ref === null ? ROOT : join(dir, 'src-tree');
  if (ref !== null) {
    git(['worktree', 'add', '--detach', '--force', source, ref]);
    symlinkSync(join(ROOT, 'node_modules'), join(source, 'node_modules'));
    symlinkSync(join(ROOT, 'build'), join(source, 'build'));
  }
  const outDir = join(dir, 'dist');
  const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
  execFileSync(process.execPath, [tsc, '-p', join(source, 'tsconfig.build.json'), '--outDir', outDir], {
    stdio: 'inherit',
  });
  // dist/../package.json, as a packed install has it (the code finds its package root from there).
  writeFileSync(join(dir, 'package.json'), readFileSync(join(source, 'package.json')));
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  symlinkSync(join(ROOT, 'build'), join(dir, 'build'));
  return outDir;
}

function pinned(cores: string | null, argv: string[]): [string, string[]] {
  const taskset = cores === null ? null : findBinary(['taskset']);
  return taskset === null ? [argv[0]!, argv.slice(1)] : [taskset, ['-c', cores!, ...argv]];
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      base: { type: 'string' },
      head: { type: 'string' },
      workload: { type: 'string', default: 'hello' },
      rounds: { type: 'string', default: '10' },
      seconds: { type: 'string', default: '2' },
      connections: { type: 'string', default: '16' },
      handler: { type: 'string', default: 'node' },
      'node-flags': { type: 'string', default: '' },
    },
  });
  const workload = WORKLOADS[values.workload!];
  const gateway = values.handler === 'gateway';
  if (
    values.base === undefined ||
    workload === undefined ||
    !['node', 'fetch', 'drop-in', 'gateway'].includes(values.handler!) ||
    (gateway && workload.php === null)
  ) {
    process.stderr.write(
      `usage: npm run bench:ab -- --base REF [--head REF] [--workload ${Object.keys(WORKLOADS).join('|')}] [--handler node|fetch|drop-in|gateway] [--node-flags="FLAGS"] [--rounds N] [--seconds S] [--connections N]\n(--handler gateway: hello, 4k or 64k)\n`,
    );
    process.exit(2);
  }
  const php = gateway ? findBinary(['php-fpm8.2', 'php-fpm']) : null;
  const wrk = gateway ? findBinary(['wrk']) : null;
  if (gateway && (php === null || wrk === null)) {
    process.stderr.write('bench:ab --handler gateway needs php-fpm8.2 and wrk (apt-get install php8.2-fpm wrk)\n');
    process.exit(2);
  }
  const rounds = Number(values.rounds);
  const seconds = Number(values.seconds);
  const dir = mkdtempSync(join(tmpdir(), 'fcgi-ab-'));
  cleanUpOnExit(dir);
  const worktrees: string[] = [];
  const cores = availableParallelism() >= 2 ? { server: String(availableParallelism() - 1), load: '0' } : null;
  try {
    const params = join(dir, 'params.txt');
    const lines = nginxParams(1).map(([name, value]) => {
      if (name === 'REQUEST_URI') return `${name}=${workload.uri}`;
      if (name === 'REQUEST_METHOD') return `${name}=${workload.args.includes('POST') ? 'POST' : 'GET'}`;
      return `${name}=${value}`;
    });
    writeFileSync(params, `${lines.join('\n')}\n`);
    // The handlers, transpiled on their own (they import only node: modules).
    const handlers = join(dir, 'e2e-handlers.js');
    writeFileSync(
      handlers,
      ts.transpileModule(readFileSync(join(ROOT, 'bench/apps/e2e-handlers.ts'), 'utf8'), {
        compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022 },
      }).outputText,
    );
    const app = join(dir, 'app.cjs');
    // A fetch app is a module whose `fetch` is the handler (`fastcgi-engine serve` tells the two kinds apart).
    writeFileSync(
      app,
      values.handler === 'fetch'
        ? `module.exports = { fetch: require(${JSON.stringify(handlers)}).fetchHandler };\n`
        : `module.exports = require(${JSON.stringify(handlers)}).nodeHandler;\n`,
    );
    const nodeFlags = values['node-flags']!.split(' ').filter((flag) => flag !== '');
    const sides: Side[] = [];
    for (const [label, ref] of [
      ['A', values.base],
      ['B', values.head ?? null],
    ] as const) {
      const sideDir = join(dir, label);
      if (ref !== null) worktrees.push(join(sideDir, 'src-tree'));
      mkdirSync(sideDir, { recursive: true });
      const name = ref === null ? 'working tree' : `${ref} (${git(['rev-parse', '--short', ref])})`;
      sides.push({
        label: `${label}: ${name}`,
        dist: build(ref, sideDir),
        socket: join(dir, `${label}.sock`),
        server: null,
        port: 0,
        samples: [],
      });
    }
    if (gateway) await startGateways(sides, php!, dir, cores?.server ?? null, nodeFlags);
    else
      for (const side of sides) {
        const [command, args] = pinned(cores?.server ?? null, [
          process.execPath,
          ...nodeFlags,
          ...(values.handler === 'drop-in'
            ? [dropIn(side, handlers), side.socket]
            : [join(side.dist, 'cli/main.js'), 'serve', app, '--socket', side.socket]),
        ]);
        side.server = track(spawn(command, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] }));
        await waitUntil(
          'serve',
          () => canConnect({ path: side.socket }),
          side.server,
          () => '',
        );
      }
    const load = (side: Side, runSeconds: number): { us: number; rps: number } => {
      if (gateway) return wrkLoad(side, wrk!, workload.php!, values.connections!, runSeconds, cores?.load ?? null);
      const before = treeCpuSeconds(side.server!.pid!);
      const [command, args] = pinned(cores?.load ?? null, [
        process.execPath,
        join(ROOT, 'dist/cli/main.js'),
        'bench',
        `unix:${side.socket}`,
        '-c',
        values.connections!,
        '--duration',
        `${runSeconds}s`,
        '--params-file',
        params,
        ...workload.args,
        '--json',
      ]);
      const run = spawnSync(command, args, { encoding: 'utf8' });
      const cpu = treeCpuSeconds(side.server!.pid!) - before;
      const report = JSON.parse(run.stdout) as { completed: number; durationSeconds: number };
      return { us: (cpu * 1e6) / report.completed, rps: report.completed / report.durationSeconds };
    };
    for (const side of sides) load(side, 3); // warm-up (JIT)
    for (let round = 0; round < rounds; round++) {
      for (const side of round % 2 === 0 ? sides : [...sides].reverse()) side.samples.push(load(side, seconds));
    }
    const median = (xs: number[]): number => {
      const s = [...xs].sort((a, b) => a - b);
      return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
    };
    const [a, b] = sides as [Side, Side];
    const out = [
      `Workload ${values.workload}${gateway ? ` (${workload.php})` : ''}, ${values.handler} handler${nodeFlags.length > 0 ? ` (node ${nodeFlags.join(' ')})` : ''}, ${rounds} rounds of ${seconds} s, ${values.connections} connections; ${gateway ? 'gateway' : 'server'} CPU µs per request${cores === null ? '' : ` (servers on core ${cores.server}, load on core ${cores.load})`}`,
      '',
      '| side | per round | median | best | req/s (median) |',
      '|---|---|---|---|---|',
      ...sides.map(
        (s) =>
          `| ${s.label} | ${s.samples.map((x) => x.us.toFixed(1)).join(' ')} | ${median(s.samples.map((x) => x.us)).toFixed(2)} | ${Math.min(...s.samples.map((x) => x.us)).toFixed(2)} | ${median(s.samples.map((x) => x.rps)).toFixed(0)} |`,
      ),
      '',
      `B/A: median of the rounds' ratios ${median(a.samples.map((x, i) => b.samples[i]!.us / x.us)).toFixed(3)}, best rounds ${(Math.min(...b.samples.map((x) => x.us)) / Math.min(...a.samples.map((x) => x.us))).toFixed(3)}`,
      '',
    ];
    process.stdout.write(out.join('\n'));
    for (const side of sides) await stop(side.server!);
  } finally {
    killAll();
    for (const worktree of worktrees) spawnSync('git', ['worktree', 'remove', '--force', worktree], { cwd: ROOT });
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A script serving the `(req, res)` handler through the side's node-fastcgi drop-in, on the socket in argv. */
function dropIn(side: Side, handlers: string): string {
  const file = join(side.dist, '..', 'drop-in.cjs');
  writeFileSync(
    file,
    [
      `const { createServer } = require(${JSON.stringify(join(side.dist, 'node-fastcgi.js'))});`,
      `const { nodeHandler } = require(${JSON.stringify(handlers)});`,
      'createServer(nodeHandler).listen(process.argv[2]);',
      "process.on('SIGTERM', () => process.exit(0));",
      '',
    ].join('\n'),
  );
  return file;
}

/**
 * Each side's gateway: bench/apps/gateway.ts, transpiled into the side's directory beside a `src` that is its
 * dist (the app requires ../../src/gateway/gateway), in front of one php-fpm pool the two sides share.
 */
async function startGateways(
  sides: Side[],
  phpFpm: string,
  dir: string,
  core: string | null,
  nodeFlags: string[],
): Promise<void> {
  const docroot = join(dir, 'www');
  mkdirSync(docroot);
  writePhpScripts(docroot);
  const pool = await startPhpFpm(phpFpm, dir, PHP_CHILDREN);
  const app = ts.transpileModule(readFileSync(join(ROOT, 'bench/apps/gateway.ts'), 'utf8'), {
    compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022 },
  }).outputText;
  for (const side of sides) {
    const sideDir = join(side.dist, '..');
    symlinkSync(side.dist, join(sideDir, 'src'));
    mkdirSync(join(sideDir, 'bench/apps'), { recursive: true });
    const file = join(sideDir, 'bench/apps/gateway.js');
    writeFileSync(file, app);
    const [command, args] = pinned(core, [
      process.execPath,
      ...nodeFlags,
      file,
      'gateway',
      pool.socket,
      docroot,
      String(PHP_CHILDREN),
    ]);
    const child = track(spawn(command, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] }));
    side.server = child;
    const message = await new Promise<{ port: number }>((resolve, reject) => {
      child.once('exit', (code) =>
        reject(new Error(`${side.label}: the gateway exited with ${code} before listening`)),
      );
      child.once('message', resolve);
    });
    side.port = message.port;
  }
}

/** One wrk run against a side's gateway: its CPU per request and req/s. */
function wrkLoad(
  side: Side,
  wrk: string,
  path: string,
  connections: string,
  seconds: number,
  core: string | null,
): { us: number; rps: number } {
  const before = treeCpuSeconds(side.server!.pid!);
  const [command, args] = pinned(core, [
    wrk,
    '-t1',
    `-c${connections}`,
    `-d${Math.max(1, Math.round(seconds))}s`,
    '--latency',
    `http://127.0.0.1:${side.port}${path}`,
  ]);
  const run = spawnSync(command, args, { encoding: 'utf8' });
  const cpu = treeCpuSeconds(side.server!.pid!) - before;
  const report = parseWrk(run.stdout);
  if (report.non2xx > 0 || report.socketErrors > 0)
    throw new Error(`${side.label}: ${report.non2xx} non-2xx and ${report.socketErrors} socket errors:\n${run.stdout}`);
  return { us: (cpu * 1e6) / report.requests, rps: report.reqPerSec };
}

main().catch((error: unknown) => {
  killAll();
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
