import { AggregatorError } from '../common/errors';
/** A configuration problem, named by its dotted key path so the operator knows exactly what to fix. */
export class ConfigError extends AggregatorError {
  constructor(
    readonly key: string,
    readonly problem: string,
  ) {
    super(key === '' ? problem : `config key ${key}: ${problem}`, { code: 'CONFIG', context: { key } });
    this.name = 'ConfigError';
  }
}
