import fs from 'node:fs';
import path from 'node:path';
import type { AppConfig, StreamKind } from '../config/config';
import { propertiesValues, renderProperties, type PropertiesProfile } from '../kcl/properties';

// The KCL MultiLangDaemon's .properties of one stream (`aggregator kcl properties`, src/cli/commands/kcl.ts):
// the profile's template under properties/ filled from the config. The daemon starts this checkout's CLI
// (dist/src/cli/main.js) with this config file as its record processors.

/** The repository (or image) root: dist/src/app is three folders down. */
const repoRoot = path.resolve(__dirname, '..', '..', '..');

export interface DaemonPropertiesOptions {
  readonly config: AppConfig;
  readonly kind: StreamKind;
  readonly profile: PropertiesProfile;
  readonly workerId: string;
  readonly env: Readonly<Record<string, string | undefined>>;
}

export function renderDaemonProperties(options: DaemonPropertiesOptions): string {
  const { config, kind, profile, workerId, env } = options;
  const template = fs.readFileSync(
    path.join(repoRoot, 'properties', `${profile}.properties.template`),
    'utf8',
  );
  return renderProperties(
    template,
    propertiesValues(
      config,
      kind,
      {
        node: process.execPath,
        cli: path.join(repoRoot, 'dist', 'src', 'cli', 'main.js'),
        configFile: config.sourceFile,
      },
      workerId,
      env,
    ),
  );
}
