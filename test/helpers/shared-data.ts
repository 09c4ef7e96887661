/**
 * Where the evaluation-data mirror (the project's `shared/data`) lives. Tests read files from it or
 * serve it over HTTP. Order: $BACKPACK_SHARED_DATA, then `../shared/data` beside the checkout, then
 * /work/shared/data (the development machines' layout). CI clones elsewhere and sets the variable.
 */
import * as fs from 'fs';
import * as path from 'path';

function locate(): string {
  const candidates = [
    process.env.BACKPACK_SHARED_DATA,
    path.resolve(__dirname, '..', '..', '..', 'shared', 'data'),
    '/work/shared/data',
  ].filter((p): p is string => !!p);
  for (const c of candidates) if (fs.existsSync(path.join(c, 'MANIFEST.md'))) return path.resolve(c);
  throw new Error(`the shared data mirror was not found (tried ${candidates.join(', ')}); set BACKPACK_SHARED_DATA`);
}

export const SHARED_DATA = locate();
