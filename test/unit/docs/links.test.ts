import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { repoRoot } from '../../helpers/paths';

// The README and the docs say what a clone holds: every relative link resolves (to a heading too when it names
// one), every `npm run` script, script path and `aggregator` command they name exists, the README stays short and
// links every page of docs/, and no text points outside the repository.

const README_MAX_BYTES = 12 * 1024;

function markdownFiles(): string[] {
  const found = ['README.md', 'CHANGELOG.md'];
  for (const name of fs.readdirSync(path.join(repoRoot, 'docs')).sort()) {
    if (name.endsWith('.md')) found.push(`docs/${name}`);
  }
  const walk = (dir: string): void => {
    for (const entry of fs.readdirSync(path.join(repoRoot, dir), { withFileTypes: true })) {
      const rel = `${dir}/${entry.name}`;
      if (entry.isDirectory()) walk(rel);
      else if (entry.name.endsWith('.md')) found.push(rel);
    }
  };
  walk('deploy');
  return found;
}

const read = (rel: string): string => fs.readFileSync(path.join(repoRoot, rel), 'utf8');

/** The text outside fenced code blocks, and the lines inside them. */
function split(text: string): { prose: string; code: string[] } {
  const prose: string[] = [];
  const code: string[] = [];
  let inFence = false;
  for (const line of text.split('\n')) {
    if (/^\s*```/.test(line)) {
      inFence = !inFence;
      continue;
    }
    (inFence ? code : prose).push(line);
  }
  return { prose: prose.join('\n'), code };
}

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
export function headingAnchors(text: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const line of split(text).prose.split('\n')) {
    const m = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const base = m[1]!
      .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  return anchors;
}

/** Relative link targets of the prose (inline links, not inside code spans). */
function relativeLinks(text: string): string[] {
  const prose = split(text).prose.replace(/`[^`\n]*`/g, '');
  const links: string[] = [];
  for (const m of prose.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
    const target = m[1]!;
    if (/^[a-z][a-z+.-]*:/i.test(target)) continue; // http:, https:, mailto:
    links.push(target);
  }
  return links;
}

/** Inline code spans and code block lines: where commands are written. */
function codeTexts(text: string): string[] {
  const { prose, code } = split(text);
  return [...[...prose.matchAll(/`([^`\n]+)`/g)].map((m) => m[1]!), ...code];
}

/** Every command name registered with commander anywhere in src/ (`.command('name'`). */
function registeredCommands(): Set<string> {
  const names = new Set<string>();
  const walk = (dir: string): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith('.ts')) {
        for (const m of fs.readFileSync(full, 'utf8').matchAll(/\.command\(\s*'([a-z][\w-]*)/g))
          names.add(m[1]!);
      }
    }
  };
  walk(path.join(repoRoot, 'src'));
  return names;
}

/** The command word of `aggregator <command> ...` or `node dist/src/cli/main.js [-c FILE] <command> ...`. */
export function commandWords(code: string): string[] {
  const words: string[] = [];
  const line = code.trim().replace(/^\$\s+/, '');
  const tokens = (rest: string): string | undefined => {
    const parts = rest.trim().split(/\s+/);
    for (let i = 0; i < parts.length; i++) {
      const t = parts[i]!;
      if (t === '-c' || t === '--config') {
        i++;
        continue;
      }
      if (t === '' || t.startsWith('-') || t.startsWith('[') || t.startsWith('<') || t.startsWith('#')) {
        if (t.startsWith('#')) return undefined;
        continue;
      }
      return /^[a-z][\w-]*$/.test(t) ? t : undefined;
    }
    return undefined;
  };
  const direct = /^(?:npx\s+)?aggregator\s+(.*)$/.exec(line);
  if (direct) {
    const w = tokens(direct[1]!);
    if (w !== undefined) words.push(w);
  }
  for (const m of line.matchAll(/dist\/src\/cli\/main\.js\s+([^|;&]*)/g)) {
    const w = tokens(m[1]!);
    if (w !== undefined) words.push(w);
  }
  return words;
}

describe('README and docs', function () {
  const files = markdownFiles();

  it('are found (README, CHANGELOG, docs/, deploy/)', function () {
    for (const f of ['README.md', 'CHANGELOG.md', 'docs/architecture.md', 'deploy/ecs/README.md'])
      expect(files).to.include(f);
  });

  it('relative links resolve to files of the repository, and #anchors to headings', function () {
    const problems: string[] = [];
    for (const file of files) {
      for (const link of relativeLinks(read(file))) {
        const [target = '', anchor] = link.split('#', 2);
        const resolved =
          target === '' ? path.join(repoRoot, file) : path.resolve(repoRoot, path.dirname(file), target);
        const rel = path.relative(repoRoot, resolved);
        if (rel.startsWith('..') || path.isAbsolute(rel)) {
          problems.push(`${file}: ${link} points outside the repository`);
          continue;
        }
        if (!fs.existsSync(resolved)) {
          problems.push(`${file}: ${link} does not exist`);
          continue;
        }
        if (anchor !== undefined && anchor !== '' && resolved.endsWith('.md')) {
          if (!headingAnchors(fs.readFileSync(resolved, 'utf8')).has(anchor))
            problems.push(`${file}: ${link}: no heading #${anchor} in ${rel}`);
        }
      }
    }
    expect(problems).to.deep.equal([]);
  });

  it('name only npm scripts that package.json defines', function () {
    const scripts = Object.keys(
      (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts,
    );
    const problems: string[] = [];
    for (const file of files) {
      for (const m of read(file).matchAll(/\bnpm run((?:\s+-{1,2}[a-z]+)*)\s+([a-z][\w:-]*)/g)) {
        if (!scripts.includes(m[2]!)) problems.push(`${file}: npm run ${m[2]}`);
      }
    }
    expect(problems).to.deep.equal([]);
  });

  it('name only scripts/ paths that exist', function () {
    const problems: string[] = [];
    for (const file of files) {
      for (const m of read(file).matchAll(/(?<![\w./-])(?:\.\.\/)*scripts\/([\w.-]+(?:\/[\w.-]+)*)/g)) {
        const rel = `scripts/${m[1]!.replace(/\.$/, '')}`;
        if (!fs.existsSync(path.join(repoRoot, rel))) problems.push(`${file}: ${rel}`);
      }
    }
    expect(problems).to.deep.equal([]);
  });

  it('name only aggregator commands the CLI registers', function () {
    const commands = registeredCommands();
    expect(commands).to.include.members(['checkpoints', 'dlq', 'sidecar', 'reanchor', 'features', 'process']);
    const problems: string[] = [];
    for (const file of files) {
      for (const code of codeTexts(read(file))) {
        for (const word of commandWords(code)) {
          if (!commands.has(word)) problems.push(`${file}: aggregator ${word} (in \`${code.trim()}\`)`);
        }
      }
    }
    expect(problems).to.deep.equal([]);
  });

  it('finds the command words of the forms the docs use', function () {
    expect(commandWords('aggregator dlq list --stream trade')).to.deep.equal(['dlq']);
    expect(commandWords('node dist/src/cli/main.js -c config/local.yaml checkpoints')).to.deep.equal([
      'checkpoints',
    ]);
    expect(commandWords('node dist/src/cli/main.js [--config FILE] <command>')).to.deep.equal([]);
    expect(commandWords('aggregator')).to.deep.equal([]);
    expect(
      headingAnchors('## Why the MultiLang daemon, and why Lua\n## `ob:<SYMBOL>` fields\n## A\n## A'),
    ).to.deep.equal(new Set(['why-the-multilang-daemon-and-why-lua', 'obsymbol-fields', 'a', 'a-1']));
  });

  it(`README is at most ${README_MAX_BYTES} bytes and links every page of docs/`, function () {
    const readme = read('README.md');
    expect(Buffer.byteLength(readme), 'README.md size').to.be.at.most(README_MAX_BYTES);
    const linked = new Set(relativeLinks(readme).map((l) => path.normalize(l.split('#')[0]!)));
    const pages = fs
      .readdirSync(path.join(repoRoot, 'docs'))
      .filter((n) => n.endsWith('.md'))
      .map((n) => `docs/${n}`);
    expect(pages.filter((p) => !linked.has(p))).to.deep.equal([]);
  });

  it('the runbook has a section for every alert of deploy/prometheus/alerts.yml', function () {
    const alerts = [...read('deploy/prometheus/alerts.yml').matchAll(/^\s*-\s*alert:\s*(\S+)/gm)].map(
      (m) => m[1]!,
    );
    expect(alerts.length).to.be.greaterThan(5);
    const headings = split(read('docs/runbook.md'))
      .prose.split('\n')
      .filter((l) => l.startsWith('#'))
      .join('\n');
    expect(alerts.filter((a) => !new RegExp(`\\b${a}\\b`).test(headings))).to.deep.equal([]);
  });

  it('name no path outside the repository', function () {
    const problems: string[] = [];
    for (const file of files) {
      const text = read(file);
      if (/\.\.\/shared\b/.test(text)) problems.push(`${file}: ../shared`);
      // A relative path written in code (`../x`) must stay inside the repository too.
      for (const code of codeTexts(text)) {
        for (const m of code.matchAll(/(?<![\w.])((?:\.\.\/)+)[\w.-]+/g)) {
          const up = m[1]!.length / 3;
          if (up > file.split('/').length - 1) problems.push(`${file}: ${m[0]}`);
        }
      }
    }
    expect(problems).to.deep.equal([]);
  });
});
