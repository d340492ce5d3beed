import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { builtinModules } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { repoRoot } from '../helpers/paths';

// Issue 14, a lean image: the production image ships dist/src without the development-only code listed in
// scripts/dev-only.txt (benchmarks, local-stack launchers, simulated exchange, the replay and stack commands),
// pruned by scripts/prune-dev-only.sh as the Dockerfile does. No Docker engine runs here, so this builds the same
// tree in a temporary folder and checks it: no shipped module requires a pruned one or a devDependency, and the
// pruned CLI runs its production commands.

const PRODUCTION_COMMANDS = [
  'decode',
  'kcl',
  'checkpoints',
  'watch',
  'sidecar',
  'reanchor',
  'dlq',
  'features',
];
const DEV_COMMANDS = ['replay', 'stack'];

/** Every `require("...")` of a compiled CommonJS module. */
function requiresOf(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  return [...text.matchAll(/\brequire\((['"])([^'"]+)\1\)/g)].map((m) => m[2]!);
}

function jsFiles(dir: string): string[] {
  return fs
    .readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.js'))
    .map((f) => path.join(dir, f));
}

function packageOf(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
}

describe('production image contents: development-only code pruned, the rest self-contained', function () {
  this.timeout(60_000);
  let dir: string;
  let src: string;

  before(function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'image-contents-'));
    src = path.join(dir, 'dist', 'src');
    fs.cpSync(path.join(repoRoot, 'dist', 'src'), src, { recursive: true });
    fs.copyFileSync(path.join(repoRoot, 'package.json'), path.join(dir, 'package.json'));
    // What the runtime stage copies besides dist/src (see the Dockerfile).
    fs.copyFileSync(path.join(repoRoot, '.nvmrc'), path.join(dir, '.nvmrc'));
    fs.mkdirSync(path.join(dir, 'config'));
    fs.copyFileSync(
      path.join(repoRoot, 'config', 'aggregator.yaml'),
      path.join(dir, 'config', 'aggregator.yaml'),
    );
    fs.cpSync(path.join(repoRoot, 'properties'), path.join(dir, 'properties'), { recursive: true });
    fs.symlinkSync(path.join(repoRoot, 'node_modules'), path.join(dir, 'node_modules'));
    const pruned = spawnSync('bash', [path.join(repoRoot, 'scripts', 'prune-dev-only.sh'), src], {
      encoding: 'utf8',
    });
    expect(pruned.status, pruned.stderr).to.equal(0);
  });

  after(function () {
    if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('every path of scripts/dev-only.txt is gone; the production modules are there', function () {
    const entries = fs
      .readFileSync(path.join(repoRoot, 'scripts', 'dev-only.txt'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    expect(entries).to.include.members(['dev', 'cli/dev']);
    for (const entry of entries) {
      expect(
        fs.existsSync(path.join(src, entry)) || fs.existsSync(path.join(src, `${entry}.js`)),
        entry,
      ).to.equal(false);
    }
    for (const kept of [
      'cli/main.js',
      'cli/commands/process.js',
      'cli/commands/sidecar.js',
      'replay/producer.js',
    ])
      expect(fs.existsSync(path.join(src, kept)), kept).to.equal(true);
  });

  it('no shipped module requires a pruned module or a devDependency', function () {
    const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    const allowed = new Set([...Object.keys(pkg.dependencies), ...builtinModules]);
    const problems: string[] = [];
    const files = jsFiles(src);
    expect(files.length).to.be.greaterThan(50);
    for (const file of files) {
      const rel = path.relative(src, file);
      for (const specifier of requiresOf(file)) {
        if (specifier.startsWith('.')) {
          // main.js loads the development commands only when their module is present.
          if (rel === path.join('cli', 'main.js') && specifier === './dev') continue;
          const target = path.resolve(path.dirname(file), specifier);
          const exists = [target, `${target}.js`, `${target}.json`, path.join(target, 'index.js')].some((t) =>
            fs.existsSync(t),
          );
          if (!exists) problems.push(`${rel} requires ${specifier}, which is not shipped`);
        } else if (
          !allowed.has(packageOf(specifier.replace(/^node:/, ''))) &&
          !specifier.startsWith('node:')
        ) {
          problems.push(`${rel} requires ${specifier}, not a production dependency`);
        }
      }
    }
    expect(problems).to.deep.equal([]);
  });

  it('the pruned CLI lists and runs its production commands only', function () {
    const cli = path.join(src, 'cli', 'main.js');
    const help = spawnSync(process.execPath, [cli, '--help'], { encoding: 'utf8' });
    expect(help.status, help.stderr).to.equal(0);
    const listed = [...help.stdout.matchAll(/^ {2}(\w+)/gm)].map((m) => m[1]!);
    expect(listed).to.include.members(PRODUCTION_COMMANDS);
    for (const dev of DEV_COMMANDS) expect(listed).to.not.include(dev);
    const version = spawnSync(process.execPath, [cli, '--version'], { encoding: 'utf8' });
    expect(version.stdout.trim()).to.match(/^\d+\.\d+\.\d+$/);
    const out = path.join(dir, 'trade.properties');
    const props = spawnSync(
      process.execPath,
      [
        cli,
        '--config',
        path.join(dir, 'config', 'aggregator.yaml'),
        'kcl',
        'properties',
        '--stream',
        'trade',
        '--out',
        out,
      ],
      { encoding: 'utf8', env: { ...process.env, AWS_REGION: 'eu-west-1' } },
    );
    expect(props.status, props.stderr).to.equal(0);
    expect(fs.readFileSync(out, 'utf8')).to.match(
      /^executableName = .*main\.js --config .* process --stream trade$/m,
    );
    // The development commands are unknown there, with commander's own error.
    const replay = spawnSync(process.execPath, [cli, 'replay'], { encoding: 'utf8' });
    expect(replay.status).to.not.equal(0);
    expect(replay.stderr).to.match(/unknown command 'replay'/);
  });
});
