// scripts/launch.sh, the container's supervisor, run for real with LAUNCH_DRY_COMMANDS pointing the daemons and
// the sidecar at stub scripts generated here: every line of launch.sh but the two command names is the
// production path (roles, setsid, signal forwarding, waiting, stop deadline, exit status).
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { repoRoot } from '../helpers/paths';

const launchScript = path.join(repoRoot, 'scripts', 'launch.sh');
const everyChild = ['daemon-trade', 'daemon-bestbidask', 'daemon-depth', 'sidecar'];

// A stub child: records its pid, its events (started, the signals it got, exited) and its process group, and
// exits when told to through a file. On SIGTERM/SIGINT it takes STUB_STOP_SECONDS to stop (a daemon handing its
// leases off), unless <name>.ignore exists; <name>.stop-status sets the status it then exits with.
const stubBody = `
dir="$STUB_DIR"
echo "$$ $(ps -o pgid= -p $$ | tr -d ' ')" > "$dir/$name.pid"
echo started >> "$dir/$name.events"
on_signal() {
  echo "$1" >> "$dir/$name.events"
  [[ -f "$dir/$name.ignore" ]] && return
  sleep "\${STUB_STOP_SECONDS:-0.5}"
  echo exited >> "$dir/$name.events"
  exit "$(cat "$dir/$name.stop-status" 2>/dev/null || echo 0)"
}
trap 'on_signal TERM' TERM
trap 'on_signal INT' INT
while true; do
  sleep 0.05 & wait $!
  if [[ -f "$dir/$name.die" ]]; then echo died >> "$dir/$name.events"; exit "$(cat "$dir/$name.die")"; fi
done
`;

interface Run {
  readonly dir: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  readonly pid: number;
  stderr: string;
}

const runs: Run[] = [];

function makeStubDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'launch-test-'));
  fs.writeFileSync(path.join(dir, 'daemon'), `#!/usr/bin/env bash\nname="daemon-$1"\n${stubBody}`, {
    mode: 0o755,
  });
  fs.writeFileSync(path.join(dir, 'sidecar'), `#!/usr/bin/env bash\nname=sidecar\n${stubBody}`, {
    mode: 0o755,
  });
  return dir;
}

function launch(options: { role?: string; args?: string[]; env?: Record<string, string> } = {}): Run {
  const dir = makeStubDir();
  const env: NodeJS.ProcessEnv = { ...process.env, STUB_DIR: dir, LAUNCH_DRY_COMMANDS: dir, ...options.env };
  delete env.ROLE;
  if (options.role !== undefined) env.ROLE = options.role;
  // detached: launch.sh leads a process group of its own, as under tini or a terminal.
  const child = spawn('bash', [launchScript, ...(options.args ?? [])], {
    env,
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const run: Run = {
    dir,
    pid: child.pid!,
    stderr: '',
    exited: new Promise((resolve) => {
      child.on('exit', (code, signal) => resolve({ code, signal, at: Date.now() }));
    }),
  };
  child.stderr.on('data', (chunk: Buffer) => {
    run.stderr += chunk.toString();
  });
  runs.push(run);
  return run;
}

function events(run: Run, name: string): string[] {
  const file = path.join(run.dir, `${name}.events`);
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim().split('\n') : [];
}

function stubPid(run: Run, name: string): { pid: number; pgid: number } | undefined {
  const file = path.join(run.dir, `${name}.pid`);
  if (!fs.existsSync(file)) return undefined;
  const [pid, pgid] = fs.readFileSync(file, 'utf8').trim().split(' ').map(Number);
  return pid === undefined || pgid === undefined ? undefined : { pid, pgid };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(probe: () => boolean, what: string, timeoutMs = 10000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function started(run: Run, names: string[]): Promise<void> {
  await until(
    () => names.every((name) => events(run, name).includes('started')),
    `${names.join(', ')} started`,
  );
}

describe('scripts/launch.sh (stub children)', function () {
  this.timeout(30000);

  afterEach(async () => {
    // Nothing may outlive a test: kill what is left (launch.sh, then every stub's session) and remove the dirs.
    for (const run of runs.splice(0)) {
      if (alive(run.pid)) process.kill(run.pid, 'SIGKILL');
      for (const name of everyChild) {
        const stub = stubPid(run, name);
        if (stub && alive(stub.pid)) process.kill(-stub.pgid, 'SIGKILL');
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
      fs.rmSync(run.dir, { recursive: true, force: true });
    }
  });

  it('ROLE=all: SIGTERM reaches every child once, and launch.sh waits for all of them before exiting 0', async () => {
    const run = launch({ role: 'all', env: { STUB_STOP_SECONDS: '0.8' } });
    await started(run, everyChild);
    const signalledAt = Date.now();
    process.kill(run.pid, 'SIGTERM');
    const result = await run.exited;
    expect(result.code, run.stderr).to.equal(0);
    // Every child was still stopping for 0.8 s: launch.sh exited only after the last one had.
    expect(result.at - signalledAt).to.be.at.least(700);
    for (const name of everyChild) {
      expect(events(run, name), name).to.deep.equal(['started', 'TERM', 'exited']);
      expect(alive(stubPid(run, name)!.pid), `${name} still alive`).to.equal(false);
    }
  });

  it('SIGINT is forwarded as SIGTERM (the children start with SIGINT ignored, as any background job of bash)', async () => {
    const run = launch({ role: 'all' });
    await started(run, everyChild);
    process.kill(run.pid, 'SIGINT');
    expect((await run.exited).code, run.stderr).to.equal(0);
    for (const name of everyChild)
      expect(events(run, name), name).to.deep.equal(['started', 'TERM', 'exited']);
    expect(run.stderr).to.match(/received SIGINT: sending SIGTERM to/);
  });

  it('counts a child exiting 143 (a JVM after its shutdown hooks) as a clean stop', async () => {
    const run = launch({ role: 'daemon:trade' });
    await started(run, ['daemon-trade']);
    fs.writeFileSync(path.join(run.dir, 'daemon-trade.stop-status'), '143');
    process.kill(run.pid, 'SIGTERM');
    expect((await run.exited).code, run.stderr).to.equal(0);
  });

  it('runs every child in a session of its own, so a signal to the group of launch.sh does not reach them', async () => {
    const run = launch({ role: 'all' });
    await started(run, everyChild);
    for (const name of everyChild) {
      const stub = stubPid(run, name)!;
      expect(stub.pgid, `${name} is the leader of its own group`).to.equal(stub.pid);
    }
    process.kill(-run.pid, 'SIGTERM'); // the whole process group of launch.sh, as `tini -g` or Ctrl-C would
    expect((await run.exited).code, run.stderr).to.equal(0);
    // Each child heard the signal exactly once (from launch.sh), not a second time from the group signal.
    for (const name of everyChild) expect(events(run, name).filter((e) => e === 'TERM')).to.have.length(1);
  });

  it('a child that dies stops the others (SIGTERM, waited for) and the exit status is non-zero', async () => {
    const run = launch({ role: 'all' });
    await started(run, everyChild);
    fs.writeFileSync(path.join(run.dir, 'daemon-depth.die'), '3');
    const result = await run.exited;
    expect(result.code, run.stderr).to.equal(1);
    expect(events(run, 'daemon-depth')).to.deep.equal(['started', 'died']);
    for (const name of ['daemon-trade', 'daemon-bestbidask', 'sidecar']) {
      expect(events(run, name), name).to.deep.equal(['started', 'TERM', 'exited']);
    }
    expect(run.stderr).to.match(/daemon:depth \(pid \d+\) exited unexpectedly with status 3/);
  });

  it('a child that exits with status 0 on its own is also unexpected: the others stop, exit status 1', async () => {
    const run = launch({ role: 'all' });
    await started(run, everyChild);
    fs.writeFileSync(path.join(run.dir, 'sidecar.die'), '0');
    expect((await run.exited).code, run.stderr).to.equal(1);
    for (const name of ['daemon-trade', 'daemon-bestbidask', 'daemon-depth']) {
      expect(events(run, name), name).to.deep.equal(['started', 'TERM', 'exited']);
    }
  });

  it('a child that fails while stopping makes the exit status non-zero', async () => {
    const run = launch({ role: 'all' });
    await started(run, everyChild);
    fs.writeFileSync(path.join(run.dir, 'daemon-trade.stop-status'), '1');
    process.kill(run.pid, 'SIGTERM');
    expect((await run.exited).code, run.stderr).to.equal(1);
    expect(run.stderr).to.match(/daemon:trade \(pid \d+\) exited with status 1 while stopping/);
  });

  it('a child still running LAUNCH_STOP_TIMEOUT_SECONDS after the signal is killed with its session; status 1', async () => {
    const run = launch({ role: 'all', env: { LAUNCH_STOP_TIMEOUT_SECONDS: '1' } });
    await started(run, everyChild);
    fs.writeFileSync(path.join(run.dir, 'daemon-bestbidask.ignore'), '');
    const signalledAt = Date.now();
    process.kill(run.pid, 'SIGTERM');
    const result = await run.exited;
    expect(result.code, run.stderr).to.equal(1);
    expect(result.at - signalledAt).to.be.within(900, 5000);
    expect(events(run, 'daemon-bestbidask')).to.deep.equal(['started', 'TERM']);
    expect(alive(stubPid(run, 'daemon-bestbidask')!.pid)).to.equal(false);
    expect(run.stderr).to.match(/still running 1s after SIGTERM: daemon:bestbidask; killing them/);
  });

  for (const [role, expected] of [
    ['daemon:trade', ['daemon-trade']],
    ['daemon:bestbidask', ['daemon-bestbidask']],
    ['daemon:depth', ['daemon-depth']],
    ['sidecar', ['sidecar']],
  ] as const) {
    it(`ROLE=${role} runs only ${expected.join(', ')}, and stops cleanly on SIGTERM`, async () => {
      const run = launch({ role });
      await started(run, [...expected]);
      await new Promise((resolve) => setTimeout(resolve, 300)); // time for anything else to (wrongly) start
      for (const name of everyChild) {
        expect(events(run, name).length > 0, `${name} started`).to.equal(expected.includes(name as never));
      }
      process.kill(run.pid, 'SIGTERM');
      expect((await run.exited).code, run.stderr).to.equal(0);
      for (const name of expected) expect(events(run, name)).to.deep.equal(['started', 'TERM', 'exited']);
    });
  }

  it('the role argument wins over $ROLE', async () => {
    const run = launch({ role: 'all', args: ['daemon:depth'] });
    await started(run, ['daemon-depth']);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(fs.readdirSync(run.dir).filter((f) => f.endsWith('.events'))).to.deep.equal([
      'daemon-depth.events',
    ]);
    process.kill(run.pid, 'SIGTERM');
    expect((await run.exited).code).to.equal(0);
  });

  it('defaults to all without ROLE', async () => {
    const run = launch();
    await started(run, everyChild);
    process.kill(run.pid, 'SIGTERM');
    expect((await run.exited).code).to.equal(0);
  });

  it('an unknown role or a bad stop timeout exits 2 without starting anything', async () => {
    for (const options of [
      { role: 'daemon:orders' },
      { role: 'daemons' },
      { env: { LAUNCH_STOP_TIMEOUT_SECONDS: 'x' } },
    ]) {
      const run = launch(options);
      expect((await run.exited).code, JSON.stringify(options)).to.equal(2);
      expect(fs.readdirSync(run.dir).filter((f) => f.endsWith('.events'))).to.deep.equal([]);
    }
  });
});
