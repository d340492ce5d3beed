import fs from 'node:fs';
import type { MemoryBound } from './soak-options';

// RSS of the soak run's processes, from /proc (Linux): the process table (pid, parent, command line, VmRSS),
// the roles of the pipeline's processes found in it, and the growth check. The parsing and the check are pure.

export interface ProcInfo {
  readonly pid: number;
  readonly ppid: number;
  readonly comm: string;
  readonly cmdline: string;
  readonly rssKiB: number;
}

/** pid, comm and ppid of a /proc/<pid>/stat line (comm may hold spaces and parentheses). */
export function parseStat(text: string): { pid: number; comm: string; ppid: number } | undefined {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) return undefined;
  const pid = Number(text.slice(0, open).trim());
  const rest = text
    .slice(close + 1)
    .trim()
    .split(/\s+/);
  const ppid = Number(rest[1]);
  if (!Number.isInteger(pid) || !Number.isInteger(ppid)) return undefined;
  return { pid, comm: text.slice(open + 1, close), ppid };
}

/** VmRSS of a /proc/<pid>/status text in KiB (0 for a kernel thread or a zombie, which have none). */
export function parseVmRssKiB(status: string): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  return m === null ? 0 : Number(m[1]);
}

/** The whole process table; processes that exit while it is read are skipped. */
export function readProcTable(procDir = '/proc'): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const name of fs.readdirSync(procDir)) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = parseStat(fs.readFileSync(`${procDir}/${name}/stat`, 'utf8'));
      if (stat === undefined) continue;
      const status = fs.readFileSync(`${procDir}/${name}/status`, 'utf8');
      const cmdline = fs.readFileSync(`${procDir}/${name}/cmdline`, 'utf8').split('\0').join(' ').trim();
      out.push({ ...stat, cmdline, rssKiB: parseVmRssKiB(status) });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Every process below `pid` (children, grandchildren, ...), not `pid` itself. */
export function descendants(table: readonly ProcInfo[], pid: number): ProcInfo[] {
  const children = new Map<number, ProcInfo[]>();
  for (const p of table) {
    const list = children.get(p.ppid);
    if (list === undefined) children.set(p.ppid, [p]);
    else list.push(p);
  }
  const out: ProcInfo[] = [];
  const stack = [pid];
  while (stack.length > 0) {
    for (const c of children.get(stack.pop() as number) ?? []) {
      out.push(c);
      stack.push(c.pid);
    }
  }
  return out;
}

/** A process whose RSS is tracked; `pids` are summed (a service with helper children). */
export interface RoleSample {
  readonly name: string;
  readonly kind: string;
  readonly pids: readonly number[];
  readonly rssMiB: number;
}

export interface RoleSpec {
  readonly name: string;
  readonly kind: string;
  readonly pid: number;
  /** Also count the process's descendants (for services started through a wrapper). */
  readonly withDescendants: boolean;
}

/** A `aggregator process --stream <kind>` child of a KCL JVM. */
export function isProcessorChild(p: ProcInfo): boolean {
  return /\bmain\.js\b.*\bprocess\b.*--stream/.test(p.cmdline);
}

/**
 * RSS of each role; the processor children of each JVM (`kcl-<kind>`) become roles `processor-<kind>`
 * (`-2`, `-3` after the first when a daemon runs several). A role whose process is gone is left out.
 */
export function sampleRoles(table: readonly ProcInfo[], roles: readonly RoleSpec[]): RoleSample[] {
  const byPid = new Map(table.map((p) => [p.pid, p]));
  const out: RoleSample[] = [];
  for (const role of roles) {
    const self = byPid.get(role.pid);
    if (self === undefined) continue;
    const below = descendants(table, role.pid);
    const counted = role.withDescendants ? [self, ...below] : [self];
    out.push({
      name: role.name,
      kind: role.kind,
      pids: counted.map((p) => p.pid),
      rssMiB: counted.reduce((a, p) => a + p.rssKiB, 0) / 1024,
    });
    if (role.kind === 'kcl-daemon') {
      const stream = role.name.replace(/^kcl-/, '');
      below
        .filter(isProcessorChild)
        .sort((a, b) => a.pid - b.pid)
        .forEach((p, i) => {
          out.push({
            name: `processor-${stream}${i === 0 ? '' : `-${i + 1}`}`,
            kind: 'processor',
            pids: [p.pid],
            rssMiB: p.rssKiB / 1024,
          });
        });
    }
  }
  return out;
}

export interface MemoryVerdict {
  readonly name: string;
  readonly kind: string;
  readonly startMiB: number | undefined;
  readonly endMiB: number | undefined;
  readonly limitMiB: number | undefined;
  readonly pidStart: readonly number[];
  readonly pidEnd: readonly number[];
  /** Different pids at start and end: the process was restarted (its growth is not meaningful). */
  readonly restarted: boolean;
  readonly ok: boolean;
  readonly problem?: string;
}

/** end <= start x factor + slack for every role sampled at both points; a role missing at either fails. */
export function checkMemory(
  start: readonly RoleSample[],
  end: readonly RoleSample[],
  bound: MemoryBound,
): MemoryVerdict[] {
  const names = [...new Set([...start.map((s) => s.name), ...end.map((s) => s.name)])];
  return names.map((name) => {
    const s = start.find((x) => x.name === name);
    const e = end.find((x) => x.name === name);
    const kind = (s ?? e)?.kind ?? '?';
    const limit = s === undefined ? undefined : s.rssMiB * bound.factor + bound.slackMiB;
    const base = {
      name,
      kind,
      startMiB: s?.rssMiB,
      endMiB: e?.rssMiB,
      limitMiB: limit,
      pidStart: s?.pids ?? [],
      pidEnd: e?.pids ?? [],
      restarted: s !== undefined && e !== undefined && s.pids[0] !== e.pids[0],
    };
    if (s === undefined) return { ...base, ok: false, problem: 'not running at the start sample' };
    if (e === undefined) return { ...base, ok: false, problem: 'not running at the end sample' };
    if (e.rssMiB > (limit as number)) {
      return {
        ...base,
        ok: false,
        problem: `RSS ${e.rssMiB.toFixed(1)} MiB > ${(limit as number).toFixed(1)} MiB (start x ${bound.factor} + ${bound.slackMiB} MiB)`,
      };
    }
    return { ...base, ok: true };
  });
}
