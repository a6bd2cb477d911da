/**
 * The cheap check behind npm test: apply the program's copies, in the order
 * the engine runs them, to an in-memory host with the provider's own placement
 * rules (copy-to-remote.ts), and check that every file a command uses is there
 * by then: its script and the library beside it, every uploaded path in its
 * arguments, and what its step declares it reads. No VM, no sshd.
 */
import path from 'node:path';
import { copyToRemote } from './copy-to-remote';
import { Engine, type Program } from './engine';
import { COMMAND, COPY, type Source } from './provider';
import { MemoryFs } from './remote-fs';

export async function missingUploads(program: Program, opts: { home: string; base: string; reads: Record<string, string[]> }): Promise<string[]> {
  const host = new MemoryFs().mkdirs(opts.home);
  const missing: string[] = [];
  for (const r of await Engine.plan(program)) {
    if (r.type === COPY) {
      await copyToRemote(host, (r.inputs.source as Source).path, r.inputs.remotePath);
      continue;
    }
    if (r.type !== COMMAND) continue;
    const words = String(r.inputs.create).split(' ');
    const script = words[2];
    const args = words.slice(3).map((w) => w.replace(/^'|'$/g, '').split('=').slice(1).join('='));
    const uploaded = args.filter((v) => v.startsWith(`${opts.base}/`));
    const needs = [script, path.posix.join(path.posix.dirname(script), 'lib.sh'), ...uploaded, ...(opts.reads[r.name] ?? [])];
    for (const file of needs) if ((await host.stat(file)) === null) missing.push(`${r.name}: ${file}`);
  }
  return missing;
}
