import path from 'node:path';

/** The repository root (tests run from dist/test/..., sources live in test/...). */
export const repoRoot = path.resolve(__dirname, '..', '..', '..');
/** The read-only reference material beside the checkout (CI lays it at ../shared). */
export const sharedDir = path.resolve(repoRoot, '..', 'shared');
