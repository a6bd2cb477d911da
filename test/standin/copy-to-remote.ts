/**
 * CopyToRemote's placement rules, statement by statement from @pulumi/command
 * 1.2.1 (provider/pkg/provider/remote/copyController.go: sftpCopy lines
 * 203-269, copyFile 271-289, copyDir 293-320), and github.com/pkg/sftp's
 * MkdirAll, run against a RemoteFs:
 *
 * source | dest exists as dir  | dest does not exist | dest exists as file
 * -------|---------------------|---------------------|--------------------
 * dir    | dest/dir            | dest/dir            | error
 * dir/   | dest/x for x in dir | dest/x for x in dir | error
 * file   | dest/file           | dest (parents made) | dest (overwritten)
 *
 * (The provider's comment says `dest/dir` for `dir/` onto a missing dest; its
 * code, lines 231-255, copies the contents into the new dest: the code is
 * mirrored here.) Nothing on the host is ever deleted.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { RemoteFs } from './remote-fs';

/** pkg/sftp Client.MkdirAll (client.go): stat; else make the parent, then mkdir, tolerating a racing mkdir. */
export async function mkdirAll(fs: RemoteFs, p: string): Promise<void> {
  const stat = await fs.stat(p);
  if (stat === 'dir') return;
  if (stat === 'file') throw new Error(`mkdir ${p}: not a directory`);
  const trimmed = p.replace(/\/+$/, '');
  const parent = trimmed.slice(0, trimmed.lastIndexOf('/'));
  if (parent.length > 0) await mkdirAll(fs, parent);
  try {
    await fs.mkdir(p);
  } catch (err) {
    if ((await fs.stat(p)) !== 'dir') throw err;
  }
}

/** sftpCopy: `sourcePath` exactly as the FileArchive/FileAsset path was given (a trailing slash matters). */
export async function copyToRemote(fs: RemoteFs, sourcePath: string, destPath: string): Promise<void> {
  const srcIsDir = statSync(sourcePath).isDirectory();
  const destStat = await fs.stat(destPath);
  let dest = destPath;
  if (srcIsDir) {
    if (destStat === null) {
      await mkdirAll(fs, dest).catch((err) => {
        throw new Error(`failed to create remote directory ${dest}: ${err.message}`);
      });
    }
    if (!sourcePath.endsWith('/')) {
      dest = path.posix.join(dest, path.basename(sourcePath));
      const inner = await fs.stat(dest);
      // It's ok if the dir exists, the copy goes into it.
      if (inner === 'file') throw new Error(`remote path ${dest} exists but is not a directory`);
      if (inner === null) {
        await fs.mkdir(dest).catch((err) => {
          throw new Error(`failed to create remote directory ${dest}: ${err.message}`);
        });
      }
    }
    await copyDir(fs, sourcePath, dest);
  } else {
    if (destStat === 'dir') {
      dest = path.posix.join(dest, path.basename(sourcePath));
    } else if (destStat === null) {
      await mkdirAll(fs, path.posix.dirname(dest)).catch((err) => {
        throw new Error(`failed to create parent directories for ${dest}: ${err.message}`);
      });
    }
    await copyFile(fs, sourcePath, dest);
  }
}

async function copyFile(fs: RemoteFs, src: string, dst: string) {
  await fs.writeFile(dst, readFileSync(src)).catch((err) => {
    throw new Error(`failed to create remote file ${dst}: ${err.message}`);
  });
}

/** fs.WalkDir order: the directory itself, then its entries sorted by name, depth first. */
async function copyDir(fs: RemoteFs, src: string, dst: string, rel = '.'): Promise<void> {
  const remotePath = path.posix.join(dst, rel);
  const info = await fs.stat(remotePath);
  if (info === null) {
    await fs.mkdir(remotePath).catch((err) => {
      throw new Error(`failed to create remote directory ${remotePath}: ${err.message}`);
    });
  } else if (info !== 'dir') {
    throw new Error(`remote path ${remotePath} exists but is not a directory`);
  }
  for (const name of readdirSync(path.join(src, rel)).sort()) {
    const child = path.posix.join(rel, name);
    if (statSync(path.join(src, child)).isDirectory()) await copyDir(fs, src, dst, child);
    else await copyFile(fs, path.join(src, child), path.posix.join(dst, child));
  }
}
