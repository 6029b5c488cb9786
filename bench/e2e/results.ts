// What the end-to-end benchmark measured and how it is summed up: per run samples, per row and workload
// summaries (medians over rounds, CPU per request over all rounds), and the markdown tables.
import { table } from '../_util/report';
import type { Section } from './peers';
import type { WorkloadId } from './workloads';

/** One wrk run against one row. */
export interface Sample {
  readonly reqPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly requests: number;
  /** Non-2xx responses + socket errors. */
  readonly errors: number;
  /** CPU seconds over the run: wrk, the web server (all its processes), the backend (its process tree). */
  readonly wrkSeconds: number;
  readonly webSeconds: number;
  readonly backendSeconds: number;
  /** The part of backendSeconds spent in the kernel (system time: syscalls, wake-ups, the socket's copies). */
  readonly backendSystemSeconds: number;
  /** Connections the web server held to the backend, sampled during the run (HAProxy rows), else null. */
  readonly connections: readonly number[] | null;
}

export interface RowKey {
  readonly id: string;
  readonly label: string;
  readonly section: Section;
  readonly reference: boolean;
}

export interface Summary {
  readonly id: string;
  readonly label: string;
  readonly section: Section;
  readonly workload: WorkloadId;
  readonly runs: number;
  /** Median over the runs, and the extremes. */
  readonly reqPerSec: number;
  readonly reqPerSecMin: number;
  readonly reqPerSecMax: number;
  /** wrk's percentiles, median over the runs. */
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Over all runs. */
  readonly errors: number;
  readonly requests: number;
  /** CPU µs per request: CPU over all runs / requests over all runs. */
  readonly wrkUs: number;
  readonly webUs: number;
  readonly backendUs: number;
  /** The kernel's (system time) part of backendUs. */
  readonly backendKernelUs: number;
  /** backendUs / the reference row's (node:http) on the same workload and front end; null without one. */
  readonly backendVsReference: number | null;
  /** Connections to the backend during the runs: median and most of all samples (null: not counted). */
  readonly connectionsMedian: number | null;
  readonly connectionsMax: number | null;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = (sorted.length - 1) / 2;
  return (sorted[Math.floor(mid)]! + sorted[Math.ceil(mid)]!) / 2;
}

const sum = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0);

/** The summaries of `rows` (samples per row and workload), each compared with its section's reference row. */
export function summarize(
  rows: readonly { key: RowKey; workload: WorkloadId; samples: readonly Sample[] }[],
): Summary[] {
  const partial = rows
    .filter((row) => row.samples.length > 0)
    .map(({ key, workload, samples }) => {
      const requests = sum(samples.map((s) => s.requests));
      const perRequest = (seconds: number): number => (seconds * 1e6) / requests;
      const connections = samples.every((s) => s.connections === null)
        ? null
        : samples.flatMap((s) => s.connections ?? []);
      return {
        key,
        summary: {
          id: key.id,
          label: key.label,
          section: key.section,
          workload,
          runs: samples.length,
          reqPerSec: median(samples.map((s) => s.reqPerSec)),
          reqPerSecMin: Math.min(...samples.map((s) => s.reqPerSec)),
          reqPerSecMax: Math.max(...samples.map((s) => s.reqPerSec)),
          p50Ms: median(samples.map((s) => s.p50Ms)),
          p99Ms: median(samples.map((s) => s.p99Ms)),
          errors: sum(samples.map((s) => s.errors)),
          requests,
          wrkUs: perRequest(sum(samples.map((s) => s.wrkSeconds))),
          webUs: perRequest(sum(samples.map((s) => s.webSeconds))),
          backendUs: perRequest(sum(samples.map((s) => s.backendSeconds))),
          backendKernelUs: perRequest(sum(samples.map((s) => s.backendSystemSeconds))),
          connectionsMedian: connections === null || connections.length === 0 ? null : median(connections),
          connectionsMax: connections === null || connections.length === 0 ? null : Math.max(...connections),
        },
      };
    });
  return partial.map(({ summary }) => {
    const reference = partial.find(
      (p) => p.key.reference && p.key.section === summary.section && p.summary.workload === summary.workload,
    );
    return {
      ...summary,
      backendVsReference: reference === undefined ? null : summary.backendUs / reference.summary.backendUs,
    };
  });
}

function num(value: number, digits = 0): string {
  return Number.isFinite(value)
    ? value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : 'n/a';
}

function ms(value: number): string {
  return `${num(value, value < 10 ? 3 : 1)} ms`;
}

function us(value: number): string {
  return `${num(value, value < 100 ? 1 : 0)} µs`;
}

/** One workload's table for one front end. */
export function markdownTable(section: Section, summaries: readonly Summary[]): string {
  const web = section === 'nginx' ? 'nginx' : 'HAProxy';
  const head = [
    'Row',
    'req/s',
    'min–max',
    'p50',
    'p99',
    'Errors',
    'wrk CPU/req',
    `${web} CPU/req`,
    'backend CPU/req',
    'of it kernel',
    'backend vs node:http',
  ];
  if (section === 'haproxy') head.push('backend conns (median / max)');
  const lines = summaries.map((s) => {
    const cells = [
      s.label,
      num(s.reqPerSec),
      `${num(s.reqPerSecMin)}–${num(s.reqPerSecMax)}`,
      ms(s.p50Ms),
      ms(s.p99Ms),
      num(s.errors),
      us(s.wrkUs),
      us(s.webUs),
      us(s.backendUs),
      us(s.backendKernelUs),
      s.backendVsReference === null ? 'n/a' : `${num(s.backendVsReference, 2)}×`,
    ];
    if (section === 'haproxy')
      cells.push(
        s.connectionsMedian === null
          ? 'n/a'
          : `${num(s.connectionsMedian, 1)} / ${num(s.connectionsMax ?? Number.NaN)}`,
      );
    return cells;
  });
  return table(head, lines, new Set(head.map((_, i) => i).filter((i) => i > 0)));
}
