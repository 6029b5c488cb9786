// CPU time of a process and all its descendants, read from /proc (Linux). For servers that are not Node
// processes of ours (nginx, php-fpm) there is no IPC to ask: their masters fork the workers that do the work,
// so the tree under the master's pid is summed.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

let ticksPerSecond: number | null = null;

function clockTicks(): number {
  if (ticksPerSecond === null) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100; // the value on every Linux port that matters
    }
  }
  return ticksPerSecond;
}

interface Stat {
  ppid: number;
  /** utime and stime, clock ticks. */
  user: number;
  system: number;
}

function readStat(pid: number): Stat | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return null; // exited between readdir and read
  }
  // The command name (field 2) may hold spaces and parentheses: fields after it start past the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
  return { ppid: Number(fields[1]), user: Number(fields[11]), system: Number(fields[12]) };
}

/** User + system CPU seconds used so far by `root` and every live descendant. */
export function treeCpuSeconds(root: number): number {
  const { user, system } = treeCpuSplit(root);
  return user + system;
}

/** User and system (kernel) CPU seconds used so far by `root` and every live descendant. */
export function treeCpuSplit(root: number): { user: number; system: number } {
  const stats = new Map<number, Stat>();
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    const stat = readStat(pid);
    if (stat !== null) stats.set(pid, stat);
  }
  const children = new Map<number, number[]>();
  for (const [pid, stat] of stats) {
    const list = children.get(stat.ppid);
    if (list === undefined) children.set(stat.ppid, [pid]);
    else list.push(pid);
  }
  let user = 0;
  let system = 0;
  const pending = [root];
  while (pending.length > 0) {
    const pid = pending.pop()!;
    user += stats.get(pid)?.user ?? 0;
    system += stats.get(pid)?.system ?? 0;
    pending.push(...(children.get(pid) ?? []));
  }
  return { user: user / clockTicks(), system: system / clockTicks() };
}
