import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { featureDefinitionsMarkdown } from '../../../src/features/compute';
import { repoRoot } from '../../helpers/paths';

describe('docs/features.md', () => {
  it('holds the definitions table generated from FEATURE_DEFINITIONS (docs and code cannot drift)', () => {
    const doc = fs.readFileSync(path.join(repoRoot, 'docs', 'features.md'), 'utf8');
    expect(doc).to.contain(featureDefinitionsMarkdown());
  });
});
