// The end-to-end benchmark's report: markdown (the tables), JSON (for scripts) and the SVG chart of backend CPU
// per request.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { environmentLine, type Environment } from '../_util/report';
import { barChartSvg } from '../_util/svg-bars';
import type { Section } from './peers';
import { markdownTable, type RowKey, type Sample, type Summary } from './results';
import type { Skipped } from './rows';
import type { Workload } from './workloads';

/** How the run was set up, as the report states it. */
export interface RunShape {
  readonly seconds: number;
  readonly rounds: number;
  readonly warmupSeconds: number;
  readonly connections: number;
  readonly rows: readonly string[];
  readonly workloads: readonly Workload[];
}

/** Everything a run produced. */
export interface Outcome {
  readonly environment: Environment;
  readonly versions: Record<string, string>;
  readonly skipped: readonly Skipped[];
  readonly samples: readonly { key: RowKey; workload: Workload['id']; samples: readonly Sample[] }[];
  readonly summaries: readonly Summary[];
}

const SECTIONS: Record<Section, string> = {
  nginx: 'nginx (1 worker) → backend on a unix socket, kept connections on both sides',
  haproxy:
    'HAProxy (1 thread) → backend on 127.0.0.1 TCP, http-reuse always; the engine behind an fcgi-app with get-values and mpxs-conns',
};

function versionsLine(versions: Record<string, string>): string {
  const named = Object.entries(versions).map(([name, version]) =>
    version.startsWith(name) || /\s/.test(version) ? version : `${name} ${version}`,
  );
  return `Peers: ${named.join(' · ')}`;
}

export function markdown(shape: RunShape, outcome: Outcome): string {
  const env = outcome.environment;
  const warmup =
    shape.warmupSeconds > 0 ? `${shape.warmupSeconds} s unrecorded warmup per row and workload` : 'no warmup';
  const out = [
    environmentLine(env),
    versionsLine(outcome.versions),
    `Command: \`${env.command}\` · wrk -t1 -c${shape.connections}, ${shape.seconds} s per run, ${shape.rounds} round(s), ` +
      `rows alternate order each round, ${warmup}`,
    'req/s: median of the rounds (min–max); p50/p99: wrk --latency, median of the rounds; errors: non-2xx + socket ' +
      'errors, all rounds; CPU per request: user+system time over all rounds / requests (wrk from GNU time; web ' +
      "server and backend from /proc, whole process trees); of it kernel: the backend's system time per request " +
      '(syscalls, wake-ups, socket copies; what a backend in any language pays for the same reads and writes); ' +
      "backend vs node:http: backend CPU per request over node:http's behind the same front end.",
  ];
  if (outcome.skipped.length > 0) {
    out.push('', 'Skipped:');
    for (const s of outcome.skipped) out.push(`- ${s.label} (${s.id}): ${s.reason}`);
  }
  for (const section of ['nginx', 'haproxy'] as const) {
    const inSection = outcome.summaries.filter((s) => s.section === section);
    if (inSection.length === 0) continue;
    out.push('', `## ${SECTIONS[section]}`);
    for (const workload of shape.workloads) {
      const rows = inSection.filter((s) => s.workload === workload.id);
      if (rows.length > 0) out.push('', `### ${workload.title}`, '', markdownTable(section, rows));
    }
  }
  return `${out.join('\n')}\n`;
}

export function json(shape: RunShape, outcome: Outcome): string {
  const { workloads, ...knobs } = shape;
  const setup = { ...knobs, workloads: workloads.map((w) => w.id) };
  const { environment, versions, skipped, summaries, samples } = outcome;
  return `${JSON.stringify({ environment, versions, setup, skipped, summaries, samples }, null, 2)}\n`;
}

/** Writes the bar chart of backend CPU per request, one panel per workload, to `file`. */
export function writeSvg(file: string, shape: RunShape, outcome: Outcome): void {
  const env = outcome.environment;
  const svg = barChartSvg({
    title: 'Backend CPU per request (µs, lower is better)',
    notes: [
      `${env.cpu} × ${env.cores} cores · Node ${env.node} · commit ${env.commit}${env.dirty ? ' (uncommitted changes)' : ''} · ${env.date.slice(0, 10)}`,
      `${env.command} · wrk -t1 -c${shape.connections}, ${shape.seconds} s × ${shape.rounds} round(s)`,
    ],
    unit: 'µs',
    series: ['behind nginx', 'behind HAProxy'],
    panels: shape.workloads.map((workload) => ({
      title: workload.title,
      bars: outcome.summaries
        .filter((s) => s.workload === workload.id)
        .map((s) => ({ label: s.label, value: s.backendUs, series: s.section === 'nginx' ? 0 : 1 })),
    })),
  });
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, svg);
}
