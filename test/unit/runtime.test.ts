import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { repoRoot } from '../helpers/paths';

// Issue 14: Node 24 LTS is the runtime of the tests and of the image; .nvmrc pins the release, engines says the
// line, scripts/node-runtime.sh holds the integrity of each platform's binary of that release.

describe('the Node.js runtime', () => {
  const nvmrc = fs.readFileSync(path.join(repoRoot, '.nvmrc'), 'utf8').trim();
  const major = nvmrc.split('.')[0]!;

  it('.nvmrc pins an exact release of an LTS (even) line, and engines asks for that line', () => {
    expect(nvmrc).to.match(/^\d+\.\d+\.\d+$/);
    expect(Number(major) % 2, 'LTS lines are even').to.equal(0);
    expect(Number(major)).to.be.at.least(24);
    const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as {
      engines: { node: string };
    };
    expect(pkg.engines.node).to.equal(`>=${major}`);
  });

  it('scripts/node-runtime.sh pins the integrity of the .nvmrc release for x64 and arm64', () => {
    const script = fs.readFileSync(path.join(repoRoot, 'scripts', 'node-runtime.sh'), 'utf8');
    expect(script).to.match(
      new RegExp(`${nvmrc.replace(/\./g, '\\.')}/x86_64\\) arch=x64 integrity='sha512-`),
    );
    expect(script).to.match(new RegExp(`${nvmrc.replace(/\./g, '\\.')}/aarch64 `));
  });

  it('the tests run on that line (npm test and the npm scripts go through scripts/node-runtime.sh)', () => {
    expect(process.versions.node.split('.')[0]).to.equal(major);
  });
});
