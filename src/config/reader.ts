import { ConfigError } from './errors';

// A small typed reader over parsed YAML: every accessor names the dotted key in its error message, and
// `done()` rejects keys nobody asked for, so a typo ("redis.hots") fails loudly instead of being ignored.

type Plain = Record<string, unknown>;

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return `${typeof value} ${JSON.stringify(value)}`;
}

export class ConfigReader {
  private readonly seen = new Set<string>();

  constructor(
    private readonly node: Plain,
    private readonly path: string,
  ) {}

  static root(value: unknown): ConfigReader {
    if (value === null || value === undefined) return new ConfigReader({}, '');
    if (typeof value !== 'object' || Array.isArray(value)) {
      throw new ConfigError(
        '',
        `the config file must hold a mapping at the top level, got ${describe(value)}`,
      );
    }
    return new ConfigReader(value as Plain, '');
  }

  private keyPath(key: string): string {
    return this.path === '' ? key : `${this.path}.${key}`;
  }

  private raw(key: string): unknown {
    this.seen.add(key);
    return this.node[key];
  }

  /** True when the key is present (with a non-null value); does not mark it read. */
  has(key: string): boolean {
    return this.node[key] !== undefined && this.node[key] !== null;
  }

  section(key: string): ConfigReader {
    const value = this.raw(key);
    if (value === undefined || value === null) return new ConfigReader({}, this.keyPath(key));
    if (typeof value !== 'object' || Array.isArray(value)) {
      throw new ConfigError(this.keyPath(key), `expected a mapping, got ${describe(value)}`);
    }
    return new ConfigReader(value as Plain, this.keyPath(key));
  }

  string(key: string, fallback?: string): string {
    const value = this.raw(key);
    if (value === undefined || value === null) {
      if (fallback === undefined) throw new ConfigError(this.keyPath(key), 'is required');
      return fallback;
    }
    if (typeof value !== 'string')
      throw new ConfigError(this.keyPath(key), `expected a string, got ${describe(value)}`);
    return value;
  }

  optionalString(key: string): string | undefined {
    const value = this.raw(key);
    if (value === undefined || value === null || value === '') return undefined;
    if (typeof value !== 'string')
      throw new ConfigError(this.keyPath(key), `expected a string, got ${describe(value)}`);
    return value;
  }

  integer(key: string, fallback: number, min: number, max: number): number {
    const value = this.raw(key);
    if (value === undefined || value === null) return fallback;
    const n = typeof value === 'string' && /^-?\d+$/.test(value.trim()) ? Number(value) : value;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
      throw new ConfigError(
        this.keyPath(key),
        `expected an integer in ${min}..${max}, got ${describe(value)}`,
      );
    }
    return n;
  }

  boolean(key: string, fallback: boolean): boolean {
    const value = this.raw(key);
    if (value === undefined || value === null) return fallback;
    if (typeof value === 'boolean') return value;
    if (value === 'true' || value === 'false') return value === 'true';
    throw new ConfigError(this.keyPath(key), `expected true or false, got ${describe(value)}`);
  }

  oneOf<T extends string>(key: string, allowed: readonly T[], fallback: T): T {
    const value = this.raw(key);
    if (value === undefined || value === null) return fallback;
    if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
      throw new ConfigError(
        this.keyPath(key),
        `expected one of ${allowed.join(', ')}, got ${describe(value)}`,
      );
    }
    return value as T;
  }

  stringList(key: string, fallback: readonly string[]): string[] {
    const value = this.raw(key);
    if (value === undefined || value === null) return [...fallback];
    if (!Array.isArray(value) || value.some((v) => typeof v !== 'string' || v === '')) {
      throw new ConfigError(
        this.keyPath(key),
        `expected a list of non-empty strings, got ${describe(value)}`,
      );
    }
    return value as string[];
  }

  integerList(key: string, fallback: readonly number[], min: number, max: number): number[] {
    const value = this.raw(key);
    if (value === undefined || value === null) return [...fallback];
    if (
      !Array.isArray(value) ||
      value.some((v) => typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    ) {
      throw new ConfigError(
        this.keyPath(key),
        `expected a list of integers in ${min}..${max}, got ${describe(value)}`,
      );
    }
    return value as number[];
  }

  /** A key that is not supported (any more): present, it is an error saying why; absent, nothing. */
  unsupported(key: string, why: string): void {
    if (this.raw(key) !== undefined) throw new ConfigError(this.keyPath(key), `is not supported: ${why}`);
  }

  /** Rejects keys in this mapping that no accessor read. Call after reading every key of the section. */
  done(): void {
    for (const key of Object.keys(this.node)) {
      if (!this.seen.has(key)) throw new ConfigError(this.keyPath(key), 'is not a known setting');
    }
  }
}
