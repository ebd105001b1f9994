// Loading one of svault's own native addons, from the source tree under tsx or from dist/ once compiled.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/**
 * The first of `candidates` (paths relative to `base`, a module's import.meta.url) that loads and has
 * every function in `functions`, and its file; otherwise null, and why each candidate was not used.
 */
export function loadAddon<T>(base: string, candidates: readonly string[], functions: readonly string[]): { addon: T | null; file: string | null; failures: string[] } {
  const files = candidates.map((c) => fileURLToPath(new URL(c, base))).filter((f) => existsSync(f));
  const failures: string[] = [];
  for (const file of files) {
    try {
      const addon = createRequire(base)(file) as Record<string, unknown>;
      const missing = functions.filter((f) => typeof addon[f] !== 'function');
      // Built from older sources (a checkout that moved on without npm install): use none of it.
      if (missing.length > 0) {
        failures.push(`${file} is out of date (it lacks ${missing.join(', ')}; npm install rebuilds it)`);
        continue;
      }
      return { addon: addon as T, file, failures };
    } catch (err) {
      failures.push(`${file} does not load: ${(err as Error).message}`);
    }
  }
  return { addon: null, file: null, failures };
}
