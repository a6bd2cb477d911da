/**
 * Temporary directories for a test file, removed when the file's tests end
 * (an afterAll registered on import), so runs leave nothing in the machine's
 * temp dir.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const made: string[] = [];
afterAll(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A new empty directory named cemetery-<prefix>-XXXXXX, removed after this file's tests. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), `cemetery-${prefix}-`));
  made.push(dir);
  return dir;
}
