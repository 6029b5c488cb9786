// The benchmark harness and its reports: the only module that imports tinybench or reads its result fields
// (tinybench 6: `task.result.state`, `task.result.latency.samples`, in milliseconds). Field names change across
// tinybench majors, so the major is pinned in package.json and any upgrade touches this file alone.
//
// Compiled, not transpiled on the fly. Under tsx, every `import { X } from './layout'` becomes a getter call on
// esbuild's CommonJS export object, on every use: that made the TypeScript scanner 3.5-14× slower than the
// same source compiled by tsc, what dist/ ships (scanRecords over one request: 575 vs 40 ns; scanPairs over 30
// params: 2.75 vs 0.78 µs), which would make any TS-vs-native ratio meaningless. So
// `relaunchCompiled` first compiles src/ and bench/ with TypeScript's own CommonJS emit into
// node_modules/.cache/fastcgi-engine-bench and re-runs the benchmark there with plain node
// (BENCH_TSX=1 skips this and measures under tsx).
//
// Method. A group holds cases (one input each); a case holds tasks (one implementation each), the baseline
// first. Each case runs as its own tinybench Bench, so A and B meet the same input back to back in one process;
// with rounds > 1 (BENCH_ROUNDS) every case runs again with its tasks in reverse order, and the samples of all rounds are
// pooled, so neither side always goes first (JIT tiering, GC debt and CPU boost average out). Each task
// function performs `opsPerSample` operations per sample (calibrated so a sample takes ~targetSampleUs µs, far
// above the timer's resolution and its ~50 ns cost); reported times are per operation.
import { execFileSync, spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, relative, sep } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Task } from 'tinybench' with { 'resolution-mode': 'import' };

/** One implementation of one operation on one input. */
export interface BenchTask {
  /** Row label, with the input shape: `scanPairs native, 30 params (~1 KB)`. */
  readonly name: string;
  /** Short implementation tag for JSON output: `typescript`, `native`, `routed`. */
  readonly impl: string;
  /** Performs the operation once. */
  readonly op: () => void;
}

/** One input: its tasks share it and are compared with the first (the baseline). */
export interface BenchCase {
  /** Input label: `40 req/chunk (43 KB)`. */
  readonly input: string;
  /** Input size in bytes, for JSON output and throughput. */
  readonly bytes: number;
  /** Baseline first. */
  readonly tasks: readonly BenchTask[];
}

/** One table. */
export interface BenchGroup {
  readonly title: string;
  /** A sentence printed under the title (what is measured, what counts as one op). */
  readonly description: string;
  readonly cases: readonly BenchCase[];
}

/** Harness settings. */
export interface RunOptions {
  /** Time budget per task per round, ms (tinybench `time`). */
  readonly time: number;
  /** Warmup budget per task per round, ms (tinybench `warmupTime`). */
  readonly warmupTime: number;
  /** Rounds; odd rounds run each case's tasks in reverse order. */
  readonly rounds: number;
  /** Target duration of one sample, µs; sets each case's ops per sample. */
  readonly targetSampleUs: number;
  /** Called before each case runs (progress on stderr). */
  readonly onCase?: (group: BenchGroup, benchCase: BenchCase, round: number) => void;
}

/** One measured row. */
export interface ResultRow {
  readonly task: string;
  readonly impl: string;
  readonly input: string;
  readonly bytes: number;
  /** Samples pooled over all rounds. */
  readonly samples: number;
  /** Operations per sample (each sample time is divided by it). */
  readonly opsPerSample: number;
  /** Mean time per operation, ns. */
  readonly meanNs: number;
  /** Median time per operation, ns. */
  readonly p50Ns: number;
  /** Relative margin of error of the mean at 95%, percent. */
  readonly rmePercent: number;
  /** Baseline mean / this mean: above 1 is faster than the baseline. */
  readonly ratio: number;
  readonly baseline: boolean;
}

export interface GroupResult {
  readonly title: string;
  readonly description: string;
  readonly rows: readonly ResultRow[];
}

/** Where and how the numbers were made. */
export interface Environment {
  readonly node: string;
  readonly v8: string;
  readonly platform: string;
  readonly cpu: string;
  readonly cores: number;
  readonly tinybench: string;
  readonly commit: string;
  readonly dirty: boolean;
  readonly date: string;
  readonly command: string;
  /** How the code ran: plain node on tsc's CommonJS output, or tsx. */
  readonly runner: string;
  readonly options: { time: number; warmupTime: number; rounds: number; targetSampleUs: number };
}

/** Everything one run produced; the JSON mode prints exactly this. */
export interface Report {
  readonly environment: Environment;
  readonly notes: readonly string[];
  readonly groups: readonly GroupResult[];
}

function tinybenchVersion(): string {
  try {
    // The package's `exports` hides package.json; find it next to the resolved entry point.
    let dir = dirname(require.resolve('tinybench'));
    for (let i = 0; i < 4; i++, dir = dirname(dir)) {
      try {
        const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
        if (pkg.name === 'tinybench' && typeof pkg.version === 'string') return pkg.version;
      } catch {
        // not here; go up
      }
    }
  } catch {
    // not resolvable
  }
  return 'unknown';
}

function git(args: string[]): string {
  try {
    return execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '';
  }
}

/** Whether this process runs compiled JavaScript (true) or TypeScript through tsx (false). */
export function isCompiled(entryFile: string): boolean {
  return entryFile.endsWith('.js');
}

function packageRootOf(file: string): string {
  let dir = dirname(file);
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${file}`);
    dir = parent;
  }
  return dir;
}

function listFiles(dir: string, into: string[] = []): string[] {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) listFiles(path, into);
    else if (entry.isFile()) into.push(path);
  }
  return into;
}

/**
 * Under tsx, compiles src/ and bench/ to CommonJS with TypeScript (the emit dist/ ships; no type check) into
 * node_modules/.cache/fastcgi-engine-bench, runs `entryFile`'s compiled twin there with plain node and the same
 * arguments, sets the exit code and returns true: the caller must then do nothing. Returns false when already
 * compiled or when BENCH_TSX=1.
 */
export function relaunchCompiled(entryFile: string): boolean {
  if (isCompiled(entryFile) || process.env['BENCH_TSX'] === '1') return false;
  // typescript is a devDependency; only this branch needs it.
  const ts = require('typescript') as typeof import('typescript');
  const root = packageRootOf(entryFile);
  const outRoot = join(root, 'node_modules', '.cache', 'fastcgi-engine-bench');
  rmSync(outRoot, { recursive: true, force: true });
  const compilerOptions: import('typescript').CompilerOptions = {
    module: ts.ModuleKind.Node16,
    moduleResolution: ts.ModuleResolutionKind.Node16,
    target: ts.ScriptTarget.ES2022,
    esModuleInterop: true,
    resolveJsonModule: true,
    isolatedModules: true,
  };
  for (const top of ['src', 'bench']) {
    for (const file of listFiles(join(root, top))) {
      const target = join(outRoot, relative(root, file));
      if (file.endsWith('.ts') && !file.endsWith('.d.ts')) {
        const { outputText } = ts.transpileModule(readFileSync(file, 'utf8'), { fileName: file, compilerOptions });
        mkdirSync(dirname(target), { recursive: true });
        writeFileSync(target.replace(/\.ts$/, '.js'), outputText);
      } else if (file.endsWith('.json')) {
        mkdirSync(dirname(target), { recursive: true });
        copyFileSync(file, target);
      }
    }
  }
  // The loader finds the addon from its own location (packageRoot/build/Release, then prebuilds/).
  for (const name of ['build', 'prebuilds', 'package.json']) {
    if (existsSync(join(root, name))) symlinkSync(join(root, name), join(outRoot, name));
  }
  const entry = join(outRoot, relative(root, entryFile)).replace(/\.ts$/, '.js');
  process.stderr.write(
    `compiled src/ and bench/ (TypeScript CommonJS emit) to ${relative(root, outRoot)}; running ${relative(root, entry)} with node\n`,
  );
  // node runs the twin by its real path, and node_modules may be a symlink into another checkout: the twin
  // learns the source tree it came from here (see sourceRoot).
  const child = spawnSync(process.execPath, [entry, ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, BENCH_SOURCE_ROOT: root },
  });
  if (child.error !== undefined) throw child.error;
  process.exitCode = child.status ?? 1;
  return true;
}

/**
 * The source tree of the running benchmark, where its non-TypeScript files are (bench/apps/*.mjs, *.go, *.c):
 * the package root above `entryFile`, or, for a compiled twin, the tree relaunchCompiled compiled it from.
 */
export function sourceRoot(entryFile: string): string {
  const fromParent = process.env['BENCH_SOURCE_ROOT'];
  if (fromParent !== undefined && fromParent !== '') return fromParent;
  const cache = entryFile.lastIndexOf(`${sep}node_modules${sep}`);
  return isCompiled(entryFile) && cache >= 0 ? entryFile.slice(0, cache) : packageRootOf(entryFile);
}

/** Node, CPU, tinybench and git facts for the report header. */
export function environment(command: string, options: RunOptions, entryFile: string): Environment {
  const cpuList = cpus();
  return {
    node: process.version,
    v8: process.versions.v8,
    platform: `${process.platform}-${process.arch}`,
    cpu: cpuList[0]?.model.trim() ?? 'unknown',
    cores: cpuList.length,
    tinybench: tinybenchVersion(),
    commit: git(['rev-parse', '--short', 'HEAD']) || 'unknown',
    // Uncommitted or untracked changes in the measured code: the numbers are not the commit's.
    dirty: git(['status', '--porcelain', '--', 'src', 'bench', 'native', 'binding.gyp']) !== '',
    date: new Date().toISOString(),
    command,
    runner: isCompiled(entryFile)
      ? 'node on TypeScript CommonJS emit (as dist/ ships)'
      : 'tsx (esbuild transform; TS rows slowed by getter-based imports)',
    options: {
      time: options.time,
      warmupTime: options.warmupTime,
      rounds: options.rounds,
      targetSampleUs: options.targetSampleUs,
    },
  };
}

// 1, 2, 5, 10, 20, 50, …: the smallest step at or above n.
function roundUpToStep(n: number): number {
  if (n <= 1) return 1;
  let decade = 1;
  while (decade * 10 < n) decade *= 10;
  for (const step of [1, 2, 5, 10]) if (decade * step >= n) return decade * step;
  return decade * 10;
}

// Ops per sample for a case: timed on the baseline after a short warm-up, so every task of the case shares it.
function calibrate(op: () => void, targetSampleUs: number): number {
  for (let i = 0; i < 2000; i++) op();
  let ops = 0;
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < 20) {
    for (let i = 0; i < 100; i++) op();
    ops += 100;
    elapsed = performance.now() - start;
  }
  const perOpUs = (elapsed * 1000) / ops;
  return roundUpToStep(targetSampleUs / perOpUs);
}

function repeat(op: () => void, n: number): () => void {
  if (n === 1) return op;
  return () => {
    for (let i = 0; i < n; i++) op();
  };
}

// Two-sided 95% Student t critical value (Cornish-Fisher expansion; exact enough for df ≥ 3).
function tCritical(df: number): number {
  if (df < 1) return Number.NaN;
  const z = 1.959963984540054;
  const z3 = z ** 3;
  const z5 = z ** 5;
  return z + (z3 + z) / (4 * df) + (5 * z5 + 16 * z3 + 3 * z) / (96 * df * df);
}

interface Pooled {
  samplesMs: number[];
}

// The only place tinybench result fields are read.
function samplesOf(task: Task): readonly number[] {
  const result = task.result;
  if (result.state === 'errored') throw result.error;
  if (result.state !== 'completed') throw new Error(`benchmark task ${task.name} ended in state ${result.state}`);
  return result.latency.samples ?? [];
}

function summarize(
  samplesMs: number[],
  opsPerSample: number,
): { samples: number; meanNs: number; p50Ns: number; rmePercent: number } {
  const n = samplesMs.length;
  if (n === 0) return { samples: 0, meanNs: Number.NaN, p50Ns: Number.NaN, rmePercent: Number.NaN };
  const scale = 1e6 / opsPerSample;
  let sum = 0;
  for (const s of samplesMs) sum += s;
  const mean = sum / n;
  let squares = 0;
  for (const s of samplesMs) squares += (s - mean) ** 2;
  const sd = n > 1 ? Math.sqrt(squares / (n - 1)) : 0;
  const moe = n > 1 ? (sd / Math.sqrt(n)) * tCritical(n - 1) : 0;
  const sorted = [...samplesMs].sort((a, b) => a - b);
  const mid = (n - 1) / 2;
  const p50 = (sorted[Math.floor(mid)]! + sorted[Math.ceil(mid)]!) / 2;
  return { samples: n, meanNs: mean * scale, p50Ns: p50 * scale, rmePercent: (100 * moe) / mean };
}

/** Runs every group (see the method at the top of this file) and returns the rows, baseline first per case. */
export async function runGroups(groups: readonly BenchGroup[], options: RunOptions): Promise<GroupResult[]> {
  const { Bench } = await import('tinybench');
  const ops = new Map<BenchCase, number>();
  const pooled = new Map<BenchTask, Pooled>();
  for (const group of groups) {
    for (const benchCase of group.cases) {
      ops.set(benchCase, calibrate(benchCase.tasks[0]!.op, options.targetSampleUs));
      for (const task of benchCase.tasks) pooled.set(task, { samplesMs: [] });
    }
  }
  for (let round = 0; round < options.rounds; round++) {
    for (const group of groups) {
      for (const benchCase of group.cases) {
        options.onCase?.(group, benchCase, round);
        const n = ops.get(benchCase)!;
        const bench = new Bench({
          time: options.time,
          warmupTime: options.warmupTime,
          retainSamples: true,
          throws: true,
        });
        const order = round % 2 === 0 ? benchCase.tasks : [...benchCase.tasks].reverse();
        for (const task of order) bench.add(task.name, repeat(task.op, n));
        await bench.run();
        for (const task of order) {
          const samples = samplesOf(bench.getTask(task.name)!);
          const into = pooled.get(task)!.samplesMs;
          for (const s of samples) into.push(s);
        }
      }
    }
  }
  return groups.map((group) => ({
    title: group.title,
    description: group.description,
    rows: group.cases.flatMap((benchCase) => {
      const n = ops.get(benchCase)!;
      const stats = benchCase.tasks.map((task) => summarize(pooled.get(task)!.samplesMs, n));
      const baselineMean = stats[0]!.meanNs;
      return benchCase.tasks.map((task, i) => ({
        task: task.name,
        impl: task.impl,
        input: benchCase.input,
        bytes: benchCase.bytes,
        opsPerSample: n,
        ...stats[i]!,
        ratio: baselineMean / stats[i]!.meanNs,
        baseline: i === 0,
      }));
    }),
  }));
}

/** `62.4 ns`, `1.23 µs`, `4.56 ms`. */
export function formatTime(ns: number): string {
  if (!Number.isFinite(ns)) return 'n/a';
  if (ns < 1000) return `${ns.toFixed(ns < 100 ? 1 : 0)} ns`;
  if (ns < 1e6) return `${(ns / 1000).toFixed(ns < 1e4 ? 2 : 1)} µs`;
  return `${(ns / 1e6).toFixed(2)} ms`;
}

function formatRatio(row: ResultRow): string {
  if (row.baseline) return '1.00 (baseline)';
  return `${row.ratio.toFixed(2)}×`;
}

/** A markdown table; the columns in `rightAligned` are right-aligned. */
export function table(
  headers: readonly string[],
  rows: readonly (readonly string[])[],
  rightAligned: ReadonlySet<number>,
): string {
  const widths = headers.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (cells: readonly string[]): string =>
    `| ${cells.map((cell, c) => (rightAligned.has(c) ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))).join(' | ')} |`;
  const rule = `|${widths.map((w, c) => (rightAligned.has(c) ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`;
  return [line(headers), rule, ...rows.map(line)].join('\n');
}

/** A benchmark knob from the environment: `fallback` when unset or empty; otherwise a non-negative number, or it throws. */
export function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a non-negative number, got ${raw}`);
  return value;
}

/** The report as markdown: the setup, then one table per group. */
/** The first line of an end-to-end bench's report: Node, CPU, commit, date (compare only rows of one run). */
export function environmentLine(env: Environment): string {
  return `Node ${env.node} · CPU: ${env.cpu} × ${env.cores} cores · commit ${env.commit}${env.dirty ? ' (uncommitted changes)' : ''} · ${env.date}`;
}

export function formatMarkdown(report: Report): string {
  const env = report.environment;
  const out: string[] = [];
  out.push(
    `Node ${env.node} (V8 ${env.v8}, ${env.platform}) · CPU: ${env.cpu} × ${env.cores} cores · tinybench ${env.tinybench} · ` +
      `commit ${env.commit}${env.dirty ? ' (uncommitted changes)' : ''} · ${env.date}`,
  );
  out.push(
    `Command: \`${env.command}\` · runs as ${env.runner} · ${env.options.rounds} round(s) × ${env.options.time} ms per task (+${env.options.warmupTime} ms warmup), ` +
      `tasks of a case alternate order each round, samples pooled; ~${env.options.targetSampleUs} µs per sample, times are per op.`,
  );
  for (const note of report.notes) out.push(`Note: ${note}`);
  for (const group of report.groups) {
    out.push('', `### ${group.title}`, '', group.description, '');
    const rows = group.rows.map((row) => [
      row.task,
      row.samples.toLocaleString('en-US'),
      formatTime(row.meanNs),
      `± ${row.rmePercent.toFixed(2)} %`,
      formatRatio(row),
    ]);
    out.push(table(['Task', 'Samples', 'Mean', '± RME', 'Ratio vs baseline'], rows, new Set([1, 2, 3, 4])));
    const perSample = [...new Map(group.rows.map((row) => [row.input, row.opsPerSample])).entries()].filter(
      ([, n]) => n > 1,
    );
    if (perSample.length > 0) {
      out.push('', `Ops per sample: ${perSample.map(([input, n]) => `${input} ×${n}`).join(', ')}.`);
    }
  }
  return out.join('\n');
}

/** The report as JSON (the same data as the tables, unformatted). */
export function formatJson(report: Report): string {
  return JSON.stringify(report, null, 2);
}
