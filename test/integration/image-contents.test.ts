import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { builtinModules } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { repoRoot } from '../helpers/paths';
import { devFolders, isDevOnly, sourceModules } from '../helpers/source-tree';

// Issues 14 and 15, a lean image: the production image compiles src/ with tsconfig.build.json, which leaves out
// the development-only folders src/dev (benchmarks, soak, local-stack launchers, simulated exchange, CSV replay)
// and src/cli/dev (the replay and stack commands). No Docker engine runs here, so this runs the same build into a
// temporary folder and checks it: nothing of a development-only folder is emitted, no shipped module requires a
// missing one or a devDependency, no production source imports development-only code (save the guarded
// registration in cli/main.ts), and the production CLI runs its production commands.

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

describe('production image contents: the production build leaves development-only code out', function () {
  // The build compiles the whole of src/ on a shared machine.
  this.timeout(180_000);
  let dir: string;
  let src: string;

  before(function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'image-contents-'));
    src = path.join(dir, 'dist', 'src');
    // `npm run build:production` (the Dockerfile's), into the temporary folder.
    const tsc = spawnSync(
      process.execPath,
      [
        path.join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'),
        '-p',
        path.join(repoRoot, 'tsconfig.build.json'),
        '--outDir',
        path.join(dir, 'dist'),
      ],
      { cwd: repoRoot, encoding: 'utf8' },
    );
    expect(tsc.status, tsc.stdout + tsc.stderr).to.equal(0);
    const assets = spawnSync(
      process.execPath,
      [path.join(repoRoot, 'scripts', 'copy-assets.js'), path.join(dir, 'dist')],
      { encoding: 'utf8' },
    );
    expect(assets.status, assets.stderr).to.equal(0);
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
  });

  after(function () {
    if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('emits nothing of src/dev or src/cli/dev; the production modules are there', function () {
    const dev = devFolders();
    expect(dev).to.include.members(['dev', 'cli/dev']);
    const emitted = fs
      .readdirSync(src, { recursive: true, encoding: 'utf8' })
      .map((f) => f.split(path.sep).join('/'));
    expect(emitted.filter((f) => isDevOnly(f, dev))).to.deep.equal([]);
    for (const kept of [
      'cli/main.js',
      'cli/commands/process.js',
      'cli/commands/sidecar.js',
      'replay/producer.js',
      'sbe/stream_1_0.xml',
      'state/lua/apply-trade-batch-6.lua',
    ])
      expect(emitted, kept).to.include(kept);
  });

  it('no shipped module requires a module that is not shipped or a devDependency', function () {
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

  it('no production source imports development-only code, save the guarded registration in cli/main.ts', function () {
    const dev = devFolders();
    const problems: string[] = [];
    for (const m of sourceModules()) {
      if (isDevOnly(m.file, dev)) continue;
      for (const ref of m.imports) {
        if (ref.target === undefined || !isDevOnly(ref.target, dev)) continue;
        // A require() behind a check that the module exists; an import (even `import type`) would pull
        // src/cli/dev into the production build.
        if (m.file === 'cli/main.ts' && ref.specifier === './dev' && ref.kind === 'require') continue;
        problems.push(`${m.file} imports ${ref.specifier} (${ref.kind})`);
      }
    }
    expect(problems).to.deep.equal([]);
  });

  it('the production CLI lists and runs its production commands only', function () {
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
