// wrk, the HTTP load generator, run under GNU time so that its own CPU time is known, and its report read back:
// rate, latency percentiles (--latency), errors.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { track } from './processes';

/** Runs `argv` under /usr/bin/time; resolves with stdout and the user+system CPU seconds it used. */
export async function timed(
  time: string,
  argv: string[],
  dir: string,
): Promise<{ stdout: string; cpuSeconds: number }> {
  const out = join(dir, 'time.txt');
  const child = track(spawn(time, ['-f', '%U %S', '-o', out, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] }));
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`${argv[0]} exited with ${code}: ${stderr.slice(-2000)}`);
  const [user, system] = readFileSync(out, 'utf8').trim().split(/\s+/).slice(-2).map(Number);
  return { stdout, cpuSeconds: user! + system! };
}

/** What one wrk run reported. */
export interface WrkReport {
  readonly requests: number;
  readonly reqPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Responses with a status of 400 or more. */
  readonly non2xx: number;
  /** connect + read + write + timeout errors. */
  readonly socketErrors: number;
}

/** wrk's latency figures: "50%  123.45us" (us, ms or s). */
export function wrkPercentile(output: string, percent: number): number {
  const match = new RegExp(`^\\s*${percent}%\\s+([\\d.]+)(us|ms|s)\\s*$`, 'm').exec(output);
  if (match === null) throw new Error(`no ${percent}% line in wrk's output:\n${output}`);
  const value = Number(match[1]);
  return match[2] === 'us' ? value / 1000 : match[2] === 's' ? value * 1000 : value;
}

/** Reads wrk's text report (run with --latency). */
export function parseWrk(stdout: string): WrkReport {
  const requests = Number(/(\d+) requests in/.exec(stdout)?.[1]);
  const reqPerSec = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1]);
  if (!(requests > 0) || !(reqPerSec > 0)) throw new Error(`cannot read wrk's output:\n${stdout}`);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
  const socketErrors = socket === null ? 0 : socket.slice(1).reduce((a, n) => a + Number(n), 0);
  return {
    requests,
    reqPerSec,
    p50Ms: wrkPercentile(stdout, 50),
    p99Ms: wrkPercentile(stdout, 99),
    non2xx,
    socketErrors,
  };
}

export interface WrkRun {
  /** Path of wrk and of GNU time. */
  readonly wrk: string;
  readonly time: string;
  readonly url: string;
  readonly threads: number;
  readonly connections: number;
  /** Whole seconds: wrk's -d takes no fractions. */
  readonly seconds: number;
  /** A Lua script (-s), e.g. to send a request body. */
  readonly script?: string;
  /** Where GNU time writes its figures. */
  readonly dir: string;
}

/** One wrk run: its report and its own CPU seconds (user + system, whole run, connection setup included). */
export async function runWrk(run: WrkRun): Promise<WrkReport & { cpuSeconds: number }> {
  const argv = [run.wrk, `-t${run.threads}`, `-c${run.connections}`, `-d${run.seconds}s`, '--latency'];
  if (run.script !== undefined) argv.push('-s', run.script);
  argv.push(run.url);
  const { stdout, cpuSeconds } = await timed(run.time, argv, run.dir);
  return { ...parseWrk(stdout), cpuSeconds };
}
