import path from 'node:path';
import { expect } from 'chai';
import { devFolders, isDevOnly, sourceModules, type SourceModule } from '../../helpers/source-tree';

// Issue 15, the dependency picture of src/: every module's imports (value, type, require and dynamic ones) read
// with the TypeScript parser, folded into a graph of folders. Development-only code (src/dev, src/cli/dev: what
// tsconfig.build.json leaves out of the production build) may import production code, never the other way round;
// the folders form no cycle; the data flows one way through the pipeline's layers.

/** The pipeline's layers in the order data flows through them (docs/style.md): each imports only earlier ones. */
const FLOW = ['sbe', 'events', 'state', 'features', 'sidecar'];

/** cli/main.ts loads the development commands with `require('./dev')` when their module is present. */
const GUARDED_DEV_REGISTRATION = 'cli/main.ts -> cli/dev/index.ts';

/**
 * Imports that break a rule below today, as `<module> -> <what it imports>`. An entry that no longer occurs fails
 * the last test, so the list only shrinks. Empty: keep it so.
 */
const ALLOWED_VIOLATIONS: string[] = [];

const topFolder = (folder: string): string => folder.split('/')[0]!;

/**
 * from folder -> to folder -> one import that makes the edge ('<module> imports <specifier>'). A folder is a folder of
 * src/ with its subfolders (state/book is part of state, cli/commands of cli), except the development-only parts,
 * which stay apart (src/dev, src/cli/dev): a cycle inside one folder is the file-level test's business.
 */
function folderGraph(
  modules: readonly SourceModule[],
  devParts: readonly string[],
): Map<string, Map<string, string>> {
  const unit = (folder: string): string =>
    devParts.find((d) => folder === d || folder.startsWith(`${d}/`)) ?? topFolder(folder);
  const graph = new Map<string, Map<string, string>>(modules.map((m) => [unit(m.folder), new Map()]));
  for (const m of modules) {
    const from = unit(m.folder);
    for (const ref of m.imports) {
      if (ref.target === undefined) continue;
      const to = unit(path.posix.dirname(ref.target));
      if (to !== from && !graph.get(from)!.has(to))
        graph.get(from)!.set(to, `${m.file} imports ${ref.specifier}`);
    }
  }
  return graph;
}

/** The strongly connected components of more than one node (Tarjan): the cycles of a graph. */
function cyclesOf(graph: ReadonlyMap<string, Iterable<string>>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const connect = (node: string): void => {
    index.set(node, next);
    low.set(node, next);
    next++;
    stack.push(node);
    onStack.add(node);
    for (const to of graph.get(node) ?? []) {
      if (!index.has(to)) {
        connect(to);
        low.set(node, Math.min(low.get(node)!, low.get(to)!));
      } else if (onStack.has(to)) {
        low.set(node, Math.min(low.get(node)!, index.get(to)!));
      }
    }
    if (low.get(node) === index.get(node)) {
      const component: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        component.push(member);
      } while (member !== node);
      if (component.length > 1) cycles.push(component.sort());
    }
  };
  for (const node of graph.keys()) if (!index.has(node)) connect(node);
  return cycles;
}

/** Violations as `<module> -> <target module or package>`, without the allowed ones. */
function unexpected(violations: readonly string[]): string[] {
  return violations.filter((v) => !ALLOWED_VIOLATIONS.includes(v));
}

describe('architecture: imports between the folders of src/', () => {
  let modules: SourceModule[];
  let dev: string[];
  let graph: Map<string, Map<string, string>>;

  before(() => {
    modules = sourceModules();
    dev = devFolders();
    graph = folderGraph(modules, dev);
  });

  /** Pipeline-layer modules importing a later layer: data reaching back up the flow. */
  function backwardFlow(): string[] {
    const out: string[] = [];
    for (const m of modules) {
      const layer = FLOW.indexOf(topFolder(m.folder));
      if (layer < 0) continue;
      for (const ref of m.imports) {
        if (ref.target !== undefined && FLOW.indexOf(topFolder(ref.target)) > layer)
          out.push(`${m.file} -> ${ref.target}`);
      }
    }
    return out;
  }

  /** Pipeline-layer modules importing the CLI (src/cli or commander) or the replay tooling (src/replay). */
  function layerToTooling(): string[] {
    const out: string[] = [];
    for (const m of modules) {
      if (!FLOW.includes(topFolder(m.folder))) continue;
      for (const ref of m.imports) {
        if (ref.pkg === 'commander') out.push(`${m.file} -> commander`);
        else if (ref.target !== undefined && ['cli', 'replay'].includes(topFolder(ref.target)))
          out.push(`${m.file} -> ${ref.target}`);
      }
    }
    return out;
  }

  /** Modules outside src/cli importing commander: the command line is parsed in src/cli only. */
  function commanderOutsideCli(): string[] {
    return modules
      .filter((m) => topFolder(m.folder) !== 'cli' && m.imports.some((ref) => ref.pkg === 'commander'))
      .map((m) => `${m.file} -> commander`);
  }

  it('reads every module of src/ with its imports', () => {
    expect(modules.length).to.be.greaterThan(80);
    expect(modules.map((m) => m.file)).to.include.members([
      'cli/main.ts',
      'state/writer.ts',
      'dev/bench/soak.ts',
    ]);
    // Value, type-only and require imports all count.
    expect(graph.get('state')!.has('sbe')).to.equal(true);
    expect(graph.get('cli')!.has('cli/dev')).to.equal(true);
    const main = modules.find((m) => m.file === 'cli/main.ts')!;
    expect(main.imports.map((ref) => ref.kind)).to.include.members(['static', 'require']);
    // Development-only code may import production code.
    expect(graph.get('dev')!.has('state')).to.equal(true);
    expect(graph.get('cli/dev')!.has('replay')).to.equal(true);
    const unresolved = modules.flatMap((m) =>
      m.imports
        .filter((ref) => ref.pkg === undefined && ref.target === undefined)
        .map((ref) => `${m.file}: ${ref.specifier}`),
    );
    expect(unresolved).to.deep.equal([]);
  });

  it('the development-only folders are what tsconfig.build.json leaves out: src/dev and src/cli/dev', () => {
    expect(dev).to.have.members(['dev', 'cli/dev']);
    for (const folder of dev)
      expect(
        modules.some((m) => isDevOnly(m.file, [folder])),
        folder,
      ).to.equal(true);
  });

  it('the folders import one another without a cycle', () => {
    const described = cyclesOf(new Map([...graph].map(([from, tos]) => [from, [...tos.keys()]]))).map(
      (cycle) =>
        cycle
          .flatMap((from) =>
            cycle
              .filter((to) => graph.get(from)!.has(to))
              .map((to) => `${from} -> ${to} (${graph.get(from)!.get(to)})`),
          )
          .join('; '),
    );
    expect(described).to.deep.equal([]);
  });

  it('no module is part of an import cycle', () => {
    const files = new Map(
      modules.map((m) => [
        m.file,
        m.imports.flatMap((ref) => (ref.target === undefined ? [] : [ref.target])),
      ]),
    );
    expect(cyclesOf(files)).to.deep.equal([]);
  });

  it('production code never imports development-only code, save the guarded registration in cli/main.ts', () => {
    const violations: string[] = [];
    let guarded: string[] = [];
    for (const m of modules) {
      if (isDevOnly(m.file, dev)) continue;
      for (const ref of m.imports) {
        if (ref.target === undefined || !isDevOnly(ref.target, dev)) continue;
        const edge = `${m.file} -> ${ref.target}`;
        if (edge === GUARDED_DEV_REGISTRATION) guarded = [...guarded, ref.kind];
        else violations.push(edge);
      }
    }
    expect(violations).to.deep.equal([]);
    // A require only: an `import` (even `import type`) would pull src/cli/dev into the production build.
    expect(guarded).to.deep.equal(['require']);
  });

  it(`nothing reaches back up the flow ${FLOW.join(' -> ')}`, () => {
    expect(unexpected(backwardFlow())).to.deep.equal([]);
  });

  it('the pipeline layers import neither the CLI (src/cli, commander) nor the replay tooling (src/replay)', () => {
    expect(unexpected(layerToTooling())).to.deep.equal([]);
  });

  it('commander is imported inside src/cli only', () => {
    expect(unexpected(commanderOutsideCli())).to.deep.equal([]);
  });

  it('every allowed violation still occurs (the allowlist only shrinks)', () => {
    const all = new Set([...backwardFlow(), ...layerToTooling(), ...commanderOutsideCli()]);
    expect(ALLOWED_VIOLATIONS.filter((v) => !all.has(v))).to.deep.equal([]);
  });
});
