import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { repoRoot } from './paths';

// The TypeScript sources of src/ and what each imports, parsed with the compiler's own parser (so comments and
// strings never count), for the architecture and image-contents tests. Paths are relative to src/, with '/'.

export const srcDir = path.join(repoRoot, 'src');

/** How a module names another: `import`/`export ... from`, `import type`, `require(...)`, `import(...)`. */
export type ImportKind = 'static' | 'type' | 'require' | 'dynamic';

export interface ImportRef {
  readonly specifier: string;
  readonly kind: ImportKind;
  /** The imported module of src/ (e.g. 'state/keys.ts') for a relative specifier, else undefined. */
  readonly target: string | undefined;
  /** The package (e.g. 'commander', '@aws-sdk/client-kinesis', 'node:fs') for a bare specifier, else undefined. */
  readonly pkg: string | undefined;
}

export interface SourceModule {
  /** Relative to src/, e.g. 'cli/main.ts'. */
  readonly file: string;
  /** Its folder relative to src/, e.g. 'cli' or 'dev/bench'. */
  readonly folder: string;
  readonly imports: readonly ImportRef[];
}

/**
 * The development-only folders relative to src/ ('dev', 'cli/dev'): the `exclude` of tsconfig.build.json, the
 * production build, which is the one list of them.
 */
export function devFolders(): string[] {
  const read = ts.readConfigFile(path.join(repoRoot, 'tsconfig.build.json'), (file) => ts.sys.readFile(file));
  if (read.error !== undefined)
    throw new Error(ts.flattenDiagnosticMessageText(read.error.messageText, '\n'));
  const exclude = (read.config as { exclude?: string[] }).exclude ?? [];
  return exclude.map((entry) => {
    const rel = path.posix.relative('src', entry.replace(/\/+$/, ''));
    if (rel === '' || rel.startsWith('..'))
      throw new Error(`tsconfig.build.json excludes ${entry}, not in src/`);
    return rel;
  });
}

/** Whether a path relative to src/ (a module or a folder) lies in one of the development-only folders. */
export function isDevOnly(rel: string, dev: readonly string[]): boolean {
  return dev.some((folder) => rel === folder || rel.startsWith(`${folder}/`));
}

function packageOf(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
}

/** The module of src/ a relative specifier names from `file`, or undefined when there is none. */
function resolveRelative(file: string, specifier: string): string | undefined {
  const base = path.posix.normalize(path.posix.join(path.posix.dirname(file), specifier));
  return [`${base}.ts`, `${base}.d.ts`, `${base}/index.ts`, base].find((candidate) => {
    const full = path.join(srcDir, candidate);
    return fs.existsSync(full) && fs.statSync(full).isFile();
  });
}

function importsOf(file: string, text: string): ImportRef[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const found: { specifier: string; kind: ImportKind }[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const typeOnly =
        node.importClause?.isTypeOnly === true ||
        (node.importClause !== undefined &&
          node.importClause.name === undefined &&
          node.importClause.namedBindings !== undefined &&
          ts.isNamedImports(node.importClause.namedBindings) &&
          node.importClause.namedBindings.elements.length > 0 &&
          node.importClause.namedBindings.elements.every((e) => e.isTypeOnly));
      found.push({ specifier: node.moduleSpecifier.text, kind: typeOnly ? 'type' : 'static' });
    } else if (
      ts.isExportDeclaration(node) &&
      node.moduleSpecifier !== undefined &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      found.push({ specifier: node.moduleSpecifier.text, kind: node.isTypeOnly ? 'type' : 'static' });
    } else if (
      ts.isImportEqualsDeclaration(node) &&
      ts.isExternalModuleReference(node.moduleReference) &&
      ts.isStringLiteral(node.moduleReference.expression)
    ) {
      found.push({ specifier: node.moduleReference.expression.text, kind: 'require' });
    } else if (
      ts.isImportTypeNode(node) &&
      ts.isLiteralTypeNode(node.argument) &&
      ts.isStringLiteral(node.argument.literal)
    ) {
      found.push({ specifier: node.argument.literal.text, kind: 'type' });
    } else if (ts.isCallExpression(node) && node.arguments.length === 1) {
      const argument = node.arguments[0]!;
      if (ts.isStringLiteral(argument)) {
        const specifier = argument.text;
        if (node.expression.kind === ts.SyntaxKind.ImportKeyword) found.push({ specifier, kind: 'dynamic' });
        else if (ts.isIdentifier(node.expression) && node.expression.text === 'require')
          found.push({ specifier, kind: 'require' });
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found.map(({ specifier, kind }) =>
    specifier.startsWith('.')
      ? { specifier, kind, target: resolveRelative(file, specifier), pkg: undefined }
      : { specifier, kind, target: undefined, pkg: packageOf(specifier) },
  );
}

/** Every TypeScript module of src/ (declaration files included) with its imports, sorted by path. */
export function sourceModules(): SourceModule[] {
  return fs
    .readdirSync(srcDir, { recursive: true, encoding: 'utf8' })
    .map((f) => f.split(path.sep).join('/'))
    .filter((f) => f.endsWith('.ts'))
    .sort()
    .map((file) => ({
      file,
      folder: path.posix.dirname(file),
      imports: importsOf(file, fs.readFileSync(path.join(srcDir, file), 'utf8')),
    }));
}
