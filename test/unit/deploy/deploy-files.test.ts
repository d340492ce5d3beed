// The deployment files, checked without Docker, AWS, Grafana or Prometheus (none runs here): the Dockerfile
// parsed into instructions, the ECS task definition and task-role policy against the repository and the
// production config, the dashboard's and the alert rules' queries against the service's metric names.
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { Histogram, type Registry } from 'prom-client';
import { buildProgram } from '../../../src/cli/main';
import { SidecarMetrics } from '../../../src/ops/sidecar-metrics';
import { ProcessorTelemetry } from '../../../src/ops/telemetry';
import { repoRoot } from '../../helpers/paths';

const read = (file: string): string => fs.readFileSync(path.join(repoRoot, file), 'utf8');
const readJson = (file: string): unknown => JSON.parse(read(file)) as unknown;

// ---------------------------------------------------------------------------------------------------------------
// The service's metrics (name -> labels), read from the registries the code fills: the sidecar's own and a
// processor child's (published to Redis and exported by its task's sidecar). Histograms also expose _bucket (with
// le), _sum and _count.
// prom-client keeps each metric's label names on the metric (not in its typings).
type Registered = ReturnType<Registry['getMetricsAsArray']>[number] & {
  readonly labelNames: readonly string[];
};
const REGISTERED = [
  new SidecarMetrics({ task: 'deploy-files-test', defaultMetrics: false }).registry,
  new ProcessorTelemetry('deploy-files-test', { task: 'deploy-files-test' }).registry,
].flatMap((registry) => registry.getMetricsAsArray() as Registered[]);
const COUNTERS_AND_GAUGES: Record<string, string[]> = Object.fromEntries(
  REGISTERED.filter((m) => !(m instanceof Histogram)).map((m) => [m.name, [...m.labelNames]]),
);
const HISTOGRAMS: Record<string, string[]> = Object.fromEntries(
  REGISTERED.filter((m) => m instanceof Histogram).map((m) => [m.name, [...m.labelNames]]),
);
// Metrics deliberately in neither the dashboard nor the alert rules, each with the reason. Empty: every metric
// the service registers is charted or alerted on.
const NOT_CHARTED: Record<string, string> = {};
// Labels Prometheus adds to every scraped series.
const TARGET_LABELS = ['instance', 'job'];

/** The labels of a metric name as it appears in a query, or undefined when the name is unknown. */
function labelsOf(name: string): string[] | undefined {
  if (COUNTERS_AND_GAUGES[name]) return COUNTERS_AND_GAUGES[name];
  if (/^process_[a-z0-9_]+$/.test(name)) return []; // prom-client's default process metrics
  const histogram = /^(.*)_(bucket|sum|count)$/.exec(name);
  const labels = histogram ? HISTOGRAMS[histogram[1]!] : undefined;
  if (!histogram || !labels) return undefined;
  return histogram[2] === 'bucket' ? [...labels, 'le'] : labels;
}

interface QueryCheck {
  metrics: string[];
  labels: Set<string>; // every label the query's metrics carry
  outputLabels: Set<string> | undefined; // labels of the result when the outermost aggregation says `by (...)`
}

/** Checks one PromQL expression: known metric names only, every label it names carried by one of its metrics. */
function checkQuery(expr: string, where: string): QueryCheck {
  const metrics = [...new Set(expr.match(/\b(?:aggregator|process)_[a-z0-9_]+\b/g) ?? [])];
  expect(metrics, `${where}: no metric in ${expr}`).to.not.be.empty;
  const labels = new Set(TARGET_LABELS);
  for (const metric of metrics) {
    const known = labelsOf(metric);
    expect(known, `${where}: unknown metric ${metric}`).to.not.equal(undefined);
    for (const label of known!) labels.add(label);
  }
  const named: string[] = [];
  for (const clause of expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)) {
    named.push(...clause[1]!.split(',').map((s) => s.trim()));
  }
  for (const selector of expr.matchAll(/\{([^}]*)\}/g)) {
    for (const matcher of selector[1]!.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g))
      named.push(matcher[1]!);
  }
  for (const label of named.filter((l) => l !== '')) {
    expect(labels.has(label), `${where}: label ${label} is not a label of ${metrics.join(', ')}`).to.equal(
      true,
    );
  }
  const outer = /^\s*(?:sum|max|min|avg|count)\s+by\s*\(([^)]*)\)/.exec(expr);
  const outputLabels = outer ? new Set(outer[1]!.split(',').map((s) => s.trim())) : undefined;
  return { metrics, labels, outputLabels };
}

/** The labels a {{label}} / {{ $labels.label }} template may use for a query's result. */
function checkTemplateLabels(template: string, query: QueryCheck, pattern: RegExp, where: string): void {
  const available = query.outputLabels ?? query.labels;
  for (const match of template.matchAll(pattern)) {
    expect(available.has(match[1]!), `${where}: ${match[0]} is not a label of the result`).to.equal(true);
  }
}

// ---------------------------------------------------------------------------------------------------------------
const config = parseYaml(read('config/aggregator.yaml')) as {
  aws: { kinesis: { streams: Record<string, string> } };
  kcl: { application_name_prefix: string; shutdown_grace_millis: number };
  health: { port: number };
  metrics: { prometheus_port: number };
};
const KINDS = ['trade', 'bestbidask', 'depth'];
const ROLES = ['all', 'sidecar', ...KINDS.map((kind) => `daemon:${kind}`)];

/** The default of LAUNCH_STOP_TIMEOUT_SECONDS in scripts/launch.sh. */
function launchStopTimeoutDefault(): number {
  const match = /stop_timeout="\$\{LAUNCH_STOP_TIMEOUT_SECONDS:-(\d+)\}"/.exec(read('scripts/launch.sh'));
  expect(match, 'launch.sh default stop timeout').to.not.equal(null);
  return Number(match![1]);
}

/** Checks a container command: launch.sh with a role, kcl-daemon.sh with a kind, or a registered CLI command. */
function checkCommand(command: string[], where: string): void {
  const [program, first, second] = command;
  if (program === 'bash' && first === 'scripts/launch.sh') {
    expect(fs.existsSync(path.join(repoRoot, first)), `${where}: ${first}`).to.equal(true);
    expect(ROLES, `${where}: role`).to.include(second);
    // The role is one launch.sh accepts (its case statement names it).
    expect(read('scripts/launch.sh')).to.include(second === 'all' ? '  all)' : second);
  } else if (program === 'bash' && first === 'scripts/kcl-daemon.sh') {
    expect(fs.existsSync(path.join(repoRoot, first))).to.equal(true);
    expect(KINDS, `${where}: kind`).to.include(second);
  } else if (program === 'node' && first === 'dist/src/cli/main.js') {
    expect(fs.existsSync(path.join(repoRoot, 'src', 'cli', 'main.ts'))).to.equal(true);
    const names = buildProgram().commands.map((c) => c.name());
    expect(names, `${where}: CLI command`).to.include(second);
  } else {
    expect.fail(`${where}: unexpected command ${JSON.stringify(command)}`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
interface Instruction {
  readonly keyword: string;
  readonly args: string;
  readonly line: number;
  readonly stage: number; // index of the FROM it belongs to
}

/** Parses a Dockerfile into instructions: comments and blank lines dropped, continuation lines joined. */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.split('\n');
  let stage = -1;
  for (let i = 0; i < lines.length; i++) {
    const start = i + 1;
    let line = lines[i]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    while (line.endsWith('\\')) {
      i++;
      expect(i < lines.length, `Dockerfile line ${start}: continuation at end of file`).to.equal(true);
      const next = lines[i]!.trim();
      if (next.startsWith('#')) continue; // comments inside a continuation are dropped by Docker too
      line = `${line.slice(0, -1).trimEnd()} ${next}`;
    }
    const match = /^([A-Za-z]+)\s+(.*)$/.exec(line);
    expect(match, `Dockerfile line ${start}: not an instruction: ${line}`).to.not.equal(null);
    const keyword = match![1]!.toUpperCase();
    if (keyword === 'FROM') stage++;
    out.push({ keyword, args: match![2]!, line: start, stage });
  }
  return out;
}

const KNOWN_INSTRUCTIONS = new Set(
  'FROM RUN CMD LABEL EXPOSE ENV ADD COPY ENTRYPOINT VOLUME USER WORKDIR ARG ONBUILD STOPSIGNAL HEALTHCHECK SHELL'.split(
    ' ',
  ),
);

/** A JSON exec-form array of strings, or undefined. */
function execForm(args: string): string[] | undefined {
  try {
    const value = JSON.parse(args) as unknown;
    return Array.isArray(value) && value.every((v) => typeof v === 'string') ? value : undefined;
  } catch {
    return undefined;
  }
}

describe('deploy files', () => {
  describe('Dockerfile', () => {
    const instructions = parseDockerfile(read('Dockerfile'));
    const froms = instructions.filter((i) => i.keyword === 'FROM');
    const finalStage = froms.length - 1;
    const inFinal = instructions.filter((i) => i.stage === finalStage);
    const stageNames = froms.map((f) => /\s+AS\s+(\S+)$/i.exec(f.args)?.[1]);

    it('parses into known instructions, multi-stage, every base image with a pinned tag other than latest', () => {
      for (const i of instructions)
        expect(KNOWN_INSTRUCTIONS.has(i.keyword), `line ${i.line}: ${i.keyword}`).to.equal(true);
      expect(instructions[0]!.keyword).to.equal('FROM');
      expect(froms.length).to.be.at.least(2);
      expect(new Set(stageNames).size, 'unique stage names').to.equal(froms.length);
      for (const from of froms) {
        const image = from.args.split(/\s+/).find((word) => !word.startsWith('--'))!;
        if (stageNames.includes(image)) continue;
        const tag = /^[^@]+:([^:/@]+)$/.exec(image)?.[1];
        expect(
          tag ?? (image.includes('@sha256:') ? 'digest' : undefined),
          `line ${from.line}: ${image} has no tag`,
        ).to.not.equal(undefined);
        expect(tag, `line ${from.line}: ${image}`).to.not.equal('latest');
      }
    });

    it('the final stage runs as a non-root user, with a JRE, tini and the HEALTHCHECK on the sidecar /live', () => {
      const users = inFinal.filter((i) => i.keyword === 'USER');
      expect(users, 'USER in the final stage').to.not.be.empty;
      const user = users[users.length - 1]!.args.split(':')[0]!;
      expect(['root', '0']).to.not.include(user);
      const runs = inFinal
        .filter((i) => i.keyword === 'RUN')
        .map((i) => i.args)
        .join('\n');
      expect(runs).to.match(/openjdk-17-jre-headless/);
      expect(runs).to.match(/\btini\b/);
      const healthchecks = inFinal.filter((i) => i.keyword === 'HEALTHCHECK');
      expect(healthchecks).to.have.length(1);
      const cmd = /^(?:--[a-z-]+=\S+\s+)*CMD\s+(.*)$/.exec(healthchecks[0]!.args);
      expect(cmd, 'HEALTHCHECK [options] CMD ...').to.not.equal(null);
      const argv = execForm(cmd![1]!);
      expect(argv, 'HEALTHCHECK CMD in exec form').to.not.equal(undefined);
      expect(argv![0]).to.equal('node'); // the image has node, not curl
      expect(argv!.join(' ')).to.include('/live');
      const env = inFinal
        .filter((i) => i.keyword === 'ENV')
        .map((i) => i.args)
        .join(' ');
      expect(env).to.match(new RegExp(`\\bHEALTH_PORT=${config.health.port}\\b`));
      const exposed = inFinal.filter((i) => i.keyword === 'EXPOSE').flatMap((i) => i.args.split(/\s+/));
      expect(exposed).to.include.members([
        String(config.health.port),
        String(config.metrics.prometheus_port),
      ]);
    });

    it('CMD and ENTRYPOINT are in exec form; the default command is launch.sh with a known role', () => {
      for (const i of instructions.filter((x) => x.keyword === 'CMD' || x.keyword === 'ENTRYPOINT')) {
        expect(execForm(i.args), `line ${i.line}: ${i.keyword} ${i.args}`).to.not.equal(undefined);
      }
      const cmd = inFinal.filter((i) => i.keyword === 'CMD').pop();
      checkCommand(execForm(cmd!.args)!, 'Dockerfile CMD');
      const entrypoint = execForm(inFinal.filter((i) => i.keyword === 'ENTRYPOINT').pop()!.args)!;
      expect(entrypoint.slice(0, 2)).to.deep.equal(['/usr/bin/tini', '--']);
    });

    it('every COPY source exists in the repository and is not excluded by .dockerignore; --from names an earlier stage', () => {
      const ignored = read('.dockerignore')
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l !== '' && !l.startsWith('#'));
      for (const copy of instructions.filter((i) => i.keyword === 'COPY' || i.keyword === 'ADD')) {
        const words = copy.args.split(/\s+/);
        const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length);
        const paths = words.filter((w) => !w.startsWith('--'));
        const sources = paths.slice(0, -1);
        expect(sources, `line ${copy.line}: no source`).to.not.be.empty;
        if (from !== undefined) {
          expect(stageNames.slice(0, copy.stage), `line ${copy.line}: stage ${from}`).to.include(from);
          continue;
        }
        for (const source of sources) {
          expect(fs.existsSync(path.join(repoRoot, source)), `line ${copy.line}: ${source} missing`).to.equal(
            true,
          );
          const top = source.replace(/^\.\//, '').split('/')[0]!;
          expect(ignored, `line ${copy.line}: ${source} is excluded by .dockerignore`).to.not.include(top);
          expect(ignored).to.not.include(source.replace(/^\.\//, ''));
        }
      }
      expect(ignored).to.include.members(['node_modules', 'dist', '.cache', '.local', '.git', 'test']);
    });

    it('every base image is node:<.nvmrc major>-...@sha256:<digest>, the same in every stage', () => {
      const nvmrc = read('.nvmrc').trim();
      expect(nvmrc).to.match(/^\d+\.\d+\.\d+$/);
      const bases = froms
        .map((f) => f.args.split(/\s+/).find((word) => !word.startsWith('--'))!)
        .filter((image) => !stageNames.includes(image));
      expect(bases.length).to.equal(froms.length);
      expect(new Set(bases).size, bases.join(', ')).to.equal(1);
      const match = /^node:(\d+)-[a-z]+-slim@sha256:[0-9a-f]{64}$/.exec(bases[0]!);
      expect(match, bases[0]).to.not.equal(null);
      expect(match![1]).to.equal(nvmrc.split('.')[0]);
      // The Dockerfile says how to update the digest.
      expect(read('Dockerfile')).to.match(/imagetools inspect node:/);
    });

    it('ships production code only: the build compiles tsconfig.build.json; the runtime copies only what runs', () => {
      const build = instructions.filter((i) => i.stage === stageNames.indexOf('build'));
      expect(
        build.filter((i) => i.keyword === 'RUN').some((i) => /\bnpm run build:production\b/.test(i.args)),
      ).to.equal(true);
      const pkg = readJson('package.json') as { scripts: Record<string, string> };
      expect(pkg.scripts['build:production']).to.match(/^tsc -p tsconfig\.build\.json && /);
      expect(
        build
          .filter((i) => i.keyword === 'COPY')
          .flatMap((i) => i.args.split(/\s+/))
          .includes('tsconfig.build.json'),
      ).to.equal(true);
      const copies = inFinal.filter((i) => i.keyword === 'COPY').map((i) => i.args);
      const sources = copies.flatMap((args) => {
        const words = args.split(/\s+/).filter((w) => !w.startsWith('--'));
        return words.slice(0, -1);
      });
      for (const whole of ['scripts', 'config', 'src', 'test', '.'])
        expect(sources, `the runtime stage copies ${whole}/ whole`).to.not.include(whole);
      expect(sources).to.include.members([
        'scripts/launch.sh',
        'scripts/kcl-daemon.sh',
        'config/aggregator.yaml',
      ]);
      const env = inFinal
        .filter((i) => i.keyword === 'ENV')
        .map((i) => i.args)
        .join(' ');
      expect(env, 'the AWS SDK runtime warning is acted on, not silenced').to.not.include('SUPPORT_WARNING');
      const volumes = inFinal
        .filter((i) => i.keyword === 'VOLUME')
        .map((i) => i.args)
        .join(' ');
      expect(volumes).to.include('/app/.local').and.to.include('/tmp');
    });

    it('every script the Dockerfile names exists', () => {
      const text = read('Dockerfile');
      const scripts = [...new Set(text.match(/scripts\/[A-Za-z0-9_./-]+\.(?:sh|js|xml)/g) ?? [])];
      expect(scripts).to.include.members(['scripts/kcl-jars.sh', 'scripts/launch.sh']);
      for (const script of scripts) expect(fs.existsSync(path.join(repoRoot, script)), script).to.equal(true);
    });
  });

  describe('ECS task definition', () => {
    interface Container {
      name: string;
      image: string;
      essential: boolean;
      command: string[];
      environment: { name: string; value: string }[];
      secrets?: { name: string; valueFrom: string }[];
      stopTimeout: number;
      portMappings?: { containerPort: number; protocol: string }[];
      healthCheck?: {
        command: string[];
        interval: number;
        timeout: number;
        retries: number;
        startPeriod: number;
      };
      logConfiguration: { logDriver: string; options: Record<string, string> };
      readonlyRootFilesystem?: boolean;
      mountPoints?: { sourceVolume: string; containerPath: string; readOnly?: boolean }[];
    }
    const text = read('deploy/ecs/task-definition.json');
    const task = JSON.parse(text) as {
      family: string;
      networkMode: string;
      taskRoleArn: string;
      executionRoleArn: string;
      containerDefinitions: Container[];
      volumes?: { name: string; host?: unknown; efsVolumeConfiguration?: unknown }[];
    };
    const byName = new Map(task.containerDefinitions.map((c) => [c.name, c]));
    const daemons = KINDS.map((kind) => byName.get(`daemon-${kind}`)!);
    const sidecar = byName.get('sidecar')!;

    it('has the four containers from one image, each essential, its command an existing script and role', () => {
      expect([...byName.keys()].sort()).to.deep.equal([
        'daemon-bestbidask',
        'daemon-depth',
        'daemon-trade',
        'sidecar',
      ]);
      expect(new Set(task.containerDefinitions.map((c) => c.image)).size).to.equal(1);
      KINDS.forEach((kind, n) => {
        expect(daemons[n]!.command).to.deep.equal(['bash', 'scripts/launch.sh', `daemon:${kind}`]);
      });
      expect(sidecar.command).to.deep.equal(['bash', 'scripts/launch.sh', 'sidecar']);
      for (const c of task.containerDefinitions) {
        expect(c.essential, c.name).to.equal(true);
        checkCommand(c.command, c.name);
      }
      expect(task.taskRoleArn).to.match(/^arn:aws:iam::<ACCOUNT_ID>:role\/.+/);
      expect(task.executionRoleArn).to.match(/^arn:aws:iam::<ACCOUNT_ID>:role\/.+/);
      expect(task.networkMode).to.equal('awsvpc');
    });

    it('environment: CONFIG_FILE (a file of the image), REDIS_HOST, REDIS_PORT, AWS_REGION; awslogs', () => {
      for (const c of task.containerDefinitions) {
        const env = new Map(c.environment.map((e) => [e.name, e.value]));
        expect([...env.keys()], c.name).to.include.members([
          'CONFIG_FILE',
          'REDIS_HOST',
          'REDIS_PORT',
          'AWS_REGION',
        ]);
        const configFile = env.get('CONFIG_FILE')!;
        expect(configFile).to.match(/^\/app\//);
        expect(fs.existsSync(path.join(repoRoot, configFile.slice('/app/'.length))), configFile).to.equal(
          true,
        );
        expect(env.get('REDIS_PORT')).to.match(/^\d+$/);
        expect(c.logConfiguration.logDriver).to.equal('awslogs');
        expect(Object.keys(c.logConfiguration.options)).to.include.members([
          'awslogs-group',
          'awslogs-region',
          'awslogs-stream-prefix',
        ]);
      }
    });

    it('read-only root filesystem; writable /app/.local and /tmp from task volumes; awslogs non-blocking with a buffer', () => {
      const volumes = new Map((task.volumes ?? []).map((v) => [v.name, v]));
      for (const c of task.containerDefinitions) {
        expect(c.readonlyRootFilesystem, c.name).to.equal(true);
        const mounts = new Map((c.mountPoints ?? []).map((m) => [m.containerPath, m]));
        expect([...mounts.keys()].sort(), c.name).to.deep.equal(['/app/.local', '/tmp']);
        for (const m of mounts.values()) {
          const volume = volumes.get(m.sourceVolume);
          expect(volume, `${c.name}: volume ${m.sourceVolume}`).to.not.equal(undefined);
          // Fargate ephemeral task storage: no host path, no EFS.
          expect(volume!.host ?? volume!.efsVolumeConfiguration, m.sourceVolume).to.equal(undefined);
          expect(m.readOnly ?? false).to.equal(false);
        }
        const options = c.logConfiguration.options;
        expect(options.mode, c.name).to.equal('non-blocking');
        expect(options['max-buffer-size'], c.name).to.match(/^\d+[kmg]$/);
      }
    });

    it('stopTimeout covers the graceful shutdown: kcl.shutdown_grace_millis <= launch.sh stop timeout < stopTimeout <= 120', () => {
      for (const c of task.containerDefinitions) {
        const launchTimeout = Number(
          c.environment.find((e) => e.name === 'LAUNCH_STOP_TIMEOUT_SECONDS')?.value ??
            launchStopTimeoutDefault(),
        );
        expect(launchTimeout * 1000, c.name).to.be.at.least(config.kcl.shutdown_grace_millis);
        expect(c.stopTimeout * 1000, c.name).to.be.at.least(config.kcl.shutdown_grace_millis);
        expect(c.stopTimeout, c.name).to.be.above(launchTimeout);
        expect(c.stopTimeout, `${c.name}: Fargate's maximum`).to.be.at.most(120);
      }
      expect(launchStopTimeoutDefault() * 1000).to.be.at.least(config.kcl.shutdown_grace_millis);
    });

    it('the sidecar has the /live check and the ports 8082 and 9091; the daemons have no health check', () => {
      const check = sidecar.healthCheck!;
      expect(['CMD', 'CMD-SHELL']).to.include(check.command[0]);
      expect(check.command.join(' ')).to.include(`127.0.0.1:${config.health.port}/live`);
      expect(check.interval).to.be.within(5, 300);
      expect(check.timeout).to.be.within(2, 60);
      expect(check.timeout).to.be.below(check.interval);
      expect(check.retries).to.be.within(1, 10);
      expect(check.startPeriod).to.be.within(0, 300);
      expect(sidecar.portMappings!.map((p) => p.containerPort).sort()).to.deep.equal(
        [config.health.port, config.metrics.prometheus_port].sort(),
      );
      for (const daemon of daemons) {
        expect(daemon.healthCheck, daemon.name).to.equal(undefined);
        expect(daemon.portMappings ?? [], daemon.name).to.deep.equal([]);
      }
    });

    it('secrets: REDIS_USERNAME and REDIS_PASSWORD from SSM / Secrets Manager, never in the environment; TLS on', () => {
      for (const c of task.containerDefinitions) {
        const secrets = new Map((c.secrets ?? []).map((e) => [e.name, e.valueFrom]));
        expect([...secrets.keys()].sort(), c.name).to.deep.equal(['REDIS_PASSWORD', 'REDIS_USERNAME']);
        expect(secrets.get('REDIS_PASSWORD')).to.match(
          /^arn:aws:secretsmanager:<REGION>:<ACCOUNT_ID>:secret:.+/,
        );
        expect(secrets.get('REDIS_USERNAME')).to.match(/^arn:aws:ssm:<REGION>:<ACCOUNT_ID>:parameter\/.+/);
        const env = c.environment.map((e) => e.name);
        for (const secret of ['REDIS_PASSWORD', 'REDIS_USERNAME', 'REDIS_URL']) {
          expect(env, `${c.name}: ${secret} as plain environment`).to.not.include(secret);
        }
        expect(c.environment.find((e) => e.name === 'REDIS_TLS')?.value, c.name).to.equal('true');
      }
    });

    it('the execution role may read exactly the secrets the containers reference, and nothing else', () => {
      const execution = readJson('deploy/ecs/execution-role-policy.json') as {
        Version: string;
        Statement: Array<{ Sid: string; Effect: string; Action: string[]; Resource: string[] }>;
      };
      expect(execution.Version).to.equal('2012-10-17');
      const referenced = new Set(
        task.containerDefinitions.flatMap((c) => (c.secrets ?? []).map((e) => e.valueFrom)),
      );
      const granted = (action: string) =>
        execution.Statement.filter((st) => st.Effect === 'Allow' && st.Action.includes(action)).flatMap(
          (st) => st.Resource,
        );
      for (const arn of referenced) {
        const action = arn.startsWith('arn:aws:secretsmanager:')
          ? 'secretsmanager:GetSecretValue'
          : 'ssm:GetParameters';
        // Secrets Manager ARNs end in a random 6-character suffix: the policy grants "<name>-*".
        expect(
          granted(action).some((r) => r === arn || r === `${arn}-*`),
          `${action} on ${arn}`,
        ).to.equal(true);
      }
      for (const st of execution.Statement) {
        for (const action of st.Action) {
          expect(action, st.Sid).to.match(/^(secretsmanager:GetSecretValue|ssm:GetParameters|kms:Decrypt)$/);
        }
        for (const r of st.Resource) expect(r, st.Sid).to.not.include('*:*');
      }
    });

    it('uses only the placeholders deploy/ecs/README.md documents', () => {
      const readme = read('deploy/ecs/README.md');
      const placeholders = new Set(
        [
          text,
          read('deploy/ecs/task-role-policy.json'),
          read('deploy/ecs/execution-role-policy.json'),
        ].flatMap((t) => t.match(/<[A-Z_]+>/g) ?? []),
      );
      expect([...placeholders]).to.not.be.empty;
      for (const p of placeholders) expect(readme, p).to.include(`\`${p}\``);
    });
  });

  describe('ECS task role policy', () => {
    interface Statement {
      Sid: string;
      Effect: string;
      Action: string[];
      Resource: string | string[];
      Condition?: unknown;
    }
    const policy = readJson('deploy/ecs/task-role-policy.json') as {
      Version: string;
      Statement: Statement[];
    };
    const resources = (s: Statement): string[] => (Array.isArray(s.Resource) ? s.Resource : [s.Resource]);
    const statementFor = (action: string): Statement[] =>
      policy.Statement.filter((s) => s.Action.includes(action));

    it('is a valid policy of Allow statements with explicit actions only', () => {
      expect(policy.Version).to.equal('2012-10-17');
      expect(new Set(policy.Statement.map((s) => s.Sid)).size).to.equal(policy.Statement.length);
      for (const s of policy.Statement) {
        expect(s.Effect).to.equal('Allow');
        for (const action of s.Action)
          expect(action, s.Sid).to.match(/^(kinesis|dynamodb|cloudwatch):[A-Z][A-Za-z]+$/);
      }
    });

    it('Kinesis: read the three streams of the config (polling: no SubscribeToShard)', () => {
      const streamArns = Object.values(config.aws.kinesis.streams).map(
        (name) => `arn:aws:kinesis:<REGION>:<ACCOUNT_ID>:stream/${name}`,
      );
      for (const action of [
        'DescribeStream',
        'DescribeStreamSummary',
        'ListShards',
        'GetShardIterator',
        'GetRecords',
      ]) {
        const statements = statementFor(`kinesis:${action}`);
        expect(statements, action).to.have.length(1);
        expect(resources(statements[0]!).sort(), action).to.deep.equal(streamArns.sort());
      }
      expect(read('properties/production.properties.template')).to.match(/^retrievalMode = POLLING$/m);
      expect(statementFor('kinesis:SubscribeToShard')).to.be.empty;
    });

    it('DynamoDB: exactly the operations KCL 2.7 uses, on the three lease tables only', () => {
      const tables = KINDS.map(
        (kind) =>
          `arn:aws:dynamodb:<REGION>:<ACCOUNT_ID>:table/${config.kcl.application_name_prefix}-${kind}`,
      );
      const statements = policy.Statement.filter((s) => s.Action.some((a) => a.startsWith('dynamodb:')));
      expect(statements).to.have.length(1);
      expect([...statements[0]!.Action].sort()).to.deep.equal(
        ['CreateTable', 'DescribeTable', 'Scan', 'GetItem', 'PutItem', 'UpdateItem', 'DeleteItem']
          .map((a) => `dynamodb:${a}`)
          .sort(),
      );
      expect(resources(statements[0]!).sort()).to.deep.equal(tables.sort());
    });

    it("CloudWatch: PutMetricData restricted to the daemons' namespaces (applicationName)", () => {
      const statements = statementFor('cloudwatch:PutMetricData');
      expect(statements).to.have.length(1);
      expect(statements[0]!.Action).to.deep.equal(['cloudwatch:PutMetricData']);
      expect(statements[0]!.Condition).to.deep.equal({
        StringLike: { 'cloudwatch:namespace': `${config.kcl.application_name_prefix}-*` },
      });
    });
  });

  describe('Grafana dashboard', () => {
    interface Panel {
      type: string;
      title: string;
      targets?: { expr: string; legendFormat?: string }[];
      panels?: Panel[];
    }
    const dashboard = readJson('deploy/grafana/aggregator-dashboard.json') as {
      uid: string;
      title: string;
      panels: Panel[];
      templating: { list: { name: string; type: string; definition?: string }[] };
    };
    const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);

    it('is a dashboard whose every query uses known metric names and labels only', () => {
      expect(dashboard.uid).to.match(/^[a-z0-9-]+$/);
      const variables = dashboard.templating.list.map((v) => v.name);
      let queries = 0;
      for (const panel of panels.filter((p) => p.type !== 'row')) {
        expect(panel.targets, panel.title).to.not.be.empty;
        for (const target of panel.targets!) {
          // Grafana variables ($stream) are values, not label names: drop them before checking.
          const expr = target.expr.replace(/\$\{?([a-z]+)\}?/g, (whole, name: string) => {
            expect(variables, `${panel.title}: variable ${whole}`).to.include(name);
            return 'x';
          });
          const query = checkQuery(expr, panel.title);
          checkTemplateLabels(target.legendFormat ?? '', query, /\{\{\s*([a-zA-Z_]+)\s*\}\}/g, panel.title);
          queries++;
        }
      }
      for (const variable of dashboard.templating.list.filter((v) => v.type === 'query')) {
        checkQuery(variable.definition!, `variable ${variable.name}`);
      }
      expect(queries).to.be.at.least(10);
    });

    it('shows every metric the service registers, unless an alert rule uses it or it is listed as not charted', () => {
      expect(REGISTERED.length, 'metrics registered').to.be.at.least(20);
      const used = new Set(
        panels.flatMap((p) =>
          (p.targets ?? []).flatMap((t) => t.expr.match(/\baggregator_[a-z0-9_]+\b/g) ?? []),
        ),
      );
      const charted = new Set([...used].map((m) => m.replace(/_(bucket|sum|count)$/, '')));
      const alerts = read('deploy/prometheus/alerts.yml');
      const missing = REGISTERED.map((m) => m.name).filter(
        (name) => !charted.has(name) && !new RegExp(`\\b${name}(_bucket|_sum|_count)?\\b`).test(alerts),
      );
      expect(
        missing.filter((name) => NOT_CHARTED[name] === undefined),
        'in neither dashboard nor alerts',
      ).to.deep.equal([]);
      // The exceptions are metrics the service registers, each with its reason.
      for (const [name, reason] of Object.entries(NOT_CHARTED)) {
        expect(COUNTERS_AND_GAUGES[name] ?? HISTOGRAMS[name], `${name} is not registered`).to.not.equal(
          undefined,
        );
        expect(reason).to.not.equal('');
      }
    });
  });

  describe('Prometheus alert rules', () => {
    interface Rule {
      alert: string;
      expr: string;
      for?: string;
      labels: { severity: string };
      annotations: { summary: string; description?: string };
    }
    const rules = (
      parseYaml(read('deploy/prometheus/alerts.yml')) as { groups: { name: string; rules: Rule[] }[] }
    ).groups;

    it('parses into groups of alerting rules with known metrics, labels and a severity', () => {
      expect(rules).to.not.be.empty;
      const names = rules.flatMap((g) => g.rules.map((r) => r.alert));
      expect(new Set(names).size, 'unique alert names').to.equal(names.length);
      for (const rule of rules.flatMap((g) => g.rules)) {
        expect(rule.alert).to.match(/^[A-Z][A-Za-z]+$/);
        expect(['warning', 'critical']).to.include(rule.labels.severity);
        if (rule.for !== undefined) expect(rule.for, rule.alert).to.match(/^\d+[smh]$/);
        const query = checkQuery(rule.expr, rule.alert);
        const text = `${rule.annotations.summary} ${rule.annotations.description ?? ''}`;
        checkTemplateLabels(text, query, /\$labels\.([a-zA-Z_]+)/g, rule.alert);
      }
    });

    it('covers lag, no records, dead letters, re-anchor failures, stopped feature updates, health, checkpoints', () => {
      const exprs = rules.flatMap((g) => g.rules.map((r) => r.expr)).join('\n');
      for (const metric of [
        'aggregator_kinesis_lag_seconds',
        'aggregator_kinesis_records_processed_total',
        'aggregator_dead_letters_total',
        'aggregator_reanchor_operations_total',
        'aggregator_feature_updates_total',
        'aggregator_health_status',
        'aggregator_checkpoint_failures_total',
      ]) {
        expect(exprs, metric).to.include(metric);
      }
    });
  });
});
