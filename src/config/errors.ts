/** A configuration problem, named by its dotted key path so the operator knows exactly what to fix. */
export class ConfigError extends Error {
  constructor(
    readonly key: string,
    readonly problem: string,
  ) {
    super(key === '' ? problem : `config key ${key}: ${problem}`);
    this.name = 'ConfigError';
  }
}
