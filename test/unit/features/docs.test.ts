import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { featureDefinitionsMarkdown } from '../../../src/features/compute';
import { FEATURE_SCHEMA_VERSION } from '../../../src/features/types';
import { repoRoot } from '../../helpers/paths';

describe('docs/features.md', () => {
  it('holds the definitions table generated from FEATURE_DEFINITIONS (docs and code cannot drift)', () => {
    const doc = fs.readFileSync(path.join(repoRoot, 'docs', 'features.md'), 'utf8');
    expect(doc).to.contain(featureDefinitionsMarkdown());
    expect(doc).to.contain(`(schema version ${FEATURE_SCHEMA_VERSION})`);
  });
});
