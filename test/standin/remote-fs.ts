/**
 * The remote file operations that @pulumi/command's CopyToRemote uses (over
 * SFTP, github.com/pkg/sftp), behind one interface with two implementations:
 * SFTP to a real sshd (ssh2), and an in-memory tree for the cheap check in
 * npm test. The copy algorithm (copy-to-remote.ts) runs unchanged on both.
 */
import path from 'node:path';
import type { SFTPWrapper } from 'ssh2';

export type RemoteStat = 'dir' | 'file' | null;

export interface RemoteFs {
  /** null when the path does not exist (remoteStat in copyController.go; sftp normalises ENOENT/ENOTDIR). */
  stat(p: string): Promise<RemoteStat>;
  /** Creates one directory; fails if it exists or its parent does not (sftp Mkdir). */
  mkdir(p: string): Promise<void>;
  /** Creates or truncates a file and writes it (sftp Create: O_RDWR|O_CREATE|O_TRUNC, no attributes, so no mode is copied). */
  writeFile(p: string, data: Buffer): Promise<void>;
}

/** An in-memory remote tree: `/` exists; a home directory can be added with `mkdirs`. */
export class MemoryFs implements RemoteFs {
  readonly entries = new Map<string, 'dir' | Buffer>([['/', 'dir']]);

  mkdirs(...dirs: string[]) {
    for (const dir of dirs) for (let d = dir; d !== '/'; d = path.posix.dirname(d)) this.entries.set(d, 'dir');
    return this;
  }
  async stat(p: string): Promise<RemoteStat> {
    const entry = this.entries.get(path.posix.normalize(p));
    return entry === undefined ? null : entry === 'dir' ? 'dir' : 'file';
  }
  async mkdir(p: string) {
    const key = path.posix.normalize(p);
    if (this.entries.has(key)) throw new Error(`mkdir ${p}: file exists`);
    if ((await this.stat(path.posix.dirname(key))) !== 'dir') throw new Error(`mkdir ${p}: no such directory`);
    this.entries.set(key, 'dir');
  }
  async writeFile(p: string, data: Buffer) {
    const key = path.posix.normalize(p);
    if (this.entries.get(key) === 'dir') throw new Error(`create ${p}: is a directory`);
    if ((await this.stat(path.posix.dirname(key))) !== 'dir') throw new Error(`create ${p}: no such directory`);
    this.entries.set(key, data);
  }
  files() {
    return [...this.entries].filter(([, v]) => v !== 'dir').map(([k]) => k).sort();
  }
}

const NO_SUCH_FILE = 2; // SSH_FX_NO_SUCH_FILE

export function sftpFs(sftp: SFTPWrapper): RemoteFs {
  const call = <T>(fn: (cb: (err: (Error & { code?: number }) | null | undefined, value?: T) => void) => void) =>
    new Promise<T>((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value as T))));
  return {
    stat: (p) =>
      call<import('ssh2').Stats>((cb) => sftp.stat(p, cb)).then(
        (s) => (s.isDirectory() ? 'dir' : 'file'),
        (err: Error & { code?: number }) => {
          if (err.code === NO_SUCH_FILE) return null;
          throw new Error(`failed to stat remote path ${p}: ${err.message}`);
        },
      ),
    mkdir: (p) => call<void>((cb) => sftp.mkdir(p, cb)),
    writeFile: async (p, data) => {
      const handle = await call<Buffer>((cb) => sftp.open(p, 'w+', cb));
      try {
        // Chunks written concurrently, as the provider's client does (sftp.UseConcurrentWrites(true), copyController.go line 179).
        const CHUNK = 32 * 1024;
        const offsets = Array.from({ length: Math.ceil(data.length / CHUNK) }, (_, i) => i * CHUNK);
        for (let i = 0; i < offsets.length; i += 16) {
          await Promise.all(
            offsets.slice(i, i + 16).map((offset) => call<void>((cb) => sftp.write(handle, data, offset, Math.min(CHUNK, data.length - offset), offset, cb))),
          );
        }
      } finally {
        await call<void>((cb) => sftp.close(handle, cb));
      }
    },
  };
}
