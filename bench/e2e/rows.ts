// The rows of the end-to-end benchmark at run time: each backend started (or skipped, with the reason), put
// behind its front end (one nginx for all nginx rows, one HAProxy for the HAProxy rows), checked, and measured
// run by run with wrk.
import type { ChildProcess } from 'node:child_process';
import { startHaproxy } from '../_util/haproxy';
import { startNginxRoutes } from '../_util/nginx';
import { treeCpuSeconds, treeCpuSplit } from '../_util/proc-cpu';
import { stop } from '../_util/processes';
import { sampleConnections } from '../_util/tcp-connections';
import { runWrk } from '../_util/wrk';
import { serverAddress, socketFor, type Backend, type Peer, type PeerContext } from './peers';
import type { Sample } from './results';
import { checkAnswer, wrkScript, type Workload } from './workloads';

/** The programs the benchmark drives (haproxy: null when not installed). */
export interface Tools {
  readonly wrk: string;
  readonly time: string;
  readonly nginx: string;
  readonly haproxy: string | null;
}

/** A row that could not run, or a workload a row answered wrongly. */
export interface Skipped {
  readonly id: string;
  readonly label: string;
  readonly reason: string;
}

export interface Row {
  readonly peer: Peer;
  readonly backend: Backend;
  /** Base URL through the front end, ending in '/': the workload's route is appended. */
  readonly url: string;
  /** The front end's master process (its tree is measured). */
  readonly webPid: number;
  /** The backend's TCP port, when the connections to it are counted (HAProxy rows). */
  readonly countPort: number | null;
  /** Workloads this row answered wrongly in the check. */
  readonly broken: Set<Workload['id']>;
}

/** Everything started for a run, to stop at its end. */
export interface Fleet {
  readonly rows: Row[];
  readonly backends: Backend[];
  readonly webServers: { child: ChildProcess; signal: NodeJS.Signals }[];
  readonly skipped: Skipped[];
  /** Versions of the peers and front ends, for the report header. */
  readonly versions: Record<string, string>;
}

function skip(fleet: Fleet, id: string, label: string, reason: string): void {
  fleet.skipped.push({ id, label, reason });
  process.stderr.write(`  skip · ${label}: ${reason}\n`);
}

/** Builds and starts each peer's backend; a peer that cannot run is skipped with the reason. */
async function startBackends(
  fleet: Fleet,
  peers: readonly Peer[],
  context: PeerContext,
  tools: Tools,
): Promise<{ peer: Peer; backend: Backend }[]> {
  const started: { peer: Peer; backend: Backend }[] = [];
  for (const peer of peers) {
    if (peer.section === 'haproxy' && tools.haproxy === null) {
      skip(fleet, peer.id, peer.label, 'no haproxy on PATH (apt-get install haproxy)');
      continue;
    }
    const prepared = await peer.prepare(context);
    if ('skip' in prepared) {
      skip(fleet, peer.id, peer.label, prepared.skip);
      continue;
    }
    if (prepared.version !== null) fleet.versions[peer.id] = prepared.version;
    let backend: Backend;
    try {
      backend = await peer.start(context, peer.section === 'nginx' ? socketFor(context, peer) : { port: 0 });
    } catch (error) {
      skip(fleet, peer.id, peer.label, `did not start: ${(error as Error).message.trim()}`);
      continue;
    }
    fleet.backends.push(backend);
    if (backend.mismatch !== null) {
      await stop(backend.child);
      skip(fleet, peer.id, peer.label, backend.mismatch);
      continue;
    }
    started.push({ peer, backend });
  }
  return started;
}

/** nginx in front of its rows' backends: one worker, a location per row, request and response bodies in memory. */
async function startNginxRows(
  fleet: Fleet,
  started: { peer: Peer; backend: Backend }[],
  tools: Tools,
  context: PeerContext,
): Promise<void> {
  if (started.length === 0) return;
  const nginx = await startNginxRoutes(
    tools.nginx,
    context.dir,
    started.map(({ peer, backend }) => ({
      location: `/${peer.id}/`,
      protocol: peer.protocol,
      server: serverAddress(backend.listen, 'unix:'),
      keepalive: context.connections,
    })),
    { root: context.dir, maxBodyBytes: 2 * 1024 * 1024, responseBufferBytes: 256 * 1024 },
  );
  fleet.webServers.push({ child: nginx.child, signal: 'SIGQUIT' });
  for (const { peer, backend } of started) {
    fleet.rows.push({
      peer,
      backend,
      url: `http://127.0.0.1:${nginx.port}/${peer.id}/`,
      webPid: nginx.child.pid!,
      countPort: null,
      broken: new Set(),
    });
  }
}

/** HAProxy in front of its rows' backends, a frontend port per row; when it does not start, its rows are skipped. */
async function startHaproxyRows(
  fleet: Fleet,
  started: { peer: Peer; backend: Backend }[],
  tools: Tools,
  context: PeerContext,
): Promise<void> {
  if (started.length === 0 || tools.haproxy === null) return;
  let haproxy: { child: ChildProcess; ports: number[] };
  try {
    haproxy = await startHaproxy(
      tools.haproxy,
      context.dir,
      started.map(({ peer, backend }) => ({
        name: peer.id.replace(/[^A-Za-z0-9_]/g, '_'),
        protocol: peer.protocol,
        server: serverAddress(backend.listen, ''),
      })),
    );
  } catch (error) {
    for (const { peer } of started)
      skip(fleet, peer.id, peer.label, `HAProxy did not start: ${(error as Error).message.trim()}`);
    return;
  }
  fleet.webServers.push({ child: haproxy.child, signal: 'SIGTERM' });
  started.forEach(({ peer, backend }, i) => {
    fleet.rows.push({
      peer,
      backend,
      url: `http://127.0.0.1:${haproxy.ports[i]}/${peer.id}/`,
      webPid: haproxy.child.pid!,
      countPort: 'port' in backend.listen ? backend.listen.port : null,
      broken: new Set(),
    });
  });
}

/** Starts every peer and its front end, and checks each row's answer to each workload (a wrong one is skipped). */
export async function startFleet(
  peers: readonly Peer[],
  workloads: readonly Workload[],
  context: PeerContext,
  tools: Tools,
  versions: Record<string, string>,
): Promise<Fleet> {
  const fleet: Fleet = { rows: [], backends: [], webServers: [], skipped: [], versions };
  const started = await startBackends(fleet, peers, context, tools);
  await startNginxRows(
    fleet,
    started.filter((s) => s.peer.section === 'nginx'),
    tools,
    context,
  );
  await startHaproxyRows(
    fleet,
    started.filter((s) => s.peer.section === 'haproxy'),
    tools,
    context,
  );
  for (const row of fleet.rows) {
    for (const workload of workloads) {
      const wrong = await checkAnswer(`${row.url}${workload.route}`, workload);
      if (wrong === null) continue;
      row.broken.add(workload.id);
      skip(fleet, row.peer.id, `${row.peer.label} · ${workload.id}`, `wrong answer: ${wrong}`);
    }
  }
  for (const backend of fleet.backends) backend.stderr.quiet();
  return fleet;
}

/** Stops the front ends, then the backends; prints what the backends wrote to stderr while measured. */
export async function stopFleet(fleet: Fleet): Promise<void> {
  for (const { child, signal } of fleet.webServers) await stop(child, signal);
  for (const backend of fleet.backends) await stop(backend.child);
  for (const backend of fleet.backends) {
    const summary = backend.stderr.summary();
    if (summary !== null) process.stderr.write(`  ${summary}\n`);
  }
}

function backendSeconds(
  after: { user: number; system: number },
  before: { user: number; system: number },
): { backendSeconds: number; backendSystemSeconds: number } {
  const system = after.system - before.system;
  return { backendSeconds: after.user - before.user + system, backendSystemSeconds: system };
}

/** One wrk run of `seconds` against `row`, with the CPU time of wrk, the front end and the backend over it. */
export async function measure(
  row: Row,
  workload: Workload,
  seconds: number,
  connections: number,
  tools: Tools,
  dir: string,
): Promise<Sample> {
  const backendPid = row.backend.child.pid!;
  const web0 = treeCpuSeconds(row.webPid);
  const backend0 = treeCpuSplit(backendPid);
  const sampler = row.countPort === null ? null : sampleConnections(row.countPort);
  const script = wrkScript(dir, workload);
  let report;
  let counted: number[] | null = null;
  try {
    report = await runWrk({
      wrk: tools.wrk,
      time: tools.time,
      url: `${row.url}${workload.route}`,
      threads: 1,
      connections,
      seconds,
      dir,
      ...(script === undefined ? {} : { script }),
    });
  } finally {
    counted = sampler?.stop() ?? null;
  }
  return {
    reqPerSec: report.reqPerSec,
    p50Ms: report.p50Ms,
    p99Ms: report.p99Ms,
    requests: report.requests,
    errors: report.non2xx + report.socketErrors,
    wrkSeconds: report.cpuSeconds,
    webSeconds: treeCpuSeconds(row.webPid) - web0,
    ...backendSeconds(treeCpuSplit(backendPid), backend0),
    connections: counted,
  };
}
