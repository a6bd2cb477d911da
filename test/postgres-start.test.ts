/**
 * What the backups step's drop-in and restart_after_crash = off rely on (scripts/host/backups.sh), on a real
 * PostgreSQL (18 here; the host's 17 has the same code):
 * - at a start, the checkpointer reckons its first sleep while recovery is in progress, leaving archive_timeout out
 *   (checkpointer.c, CheckpointerMain's loop; the postmaster starts it before the startup process, postmaster.c
 *   PostmasterMain), so a write waits for checkpoint_timeout; a reload once the server is ready wakes it, and
 *   archive_timeout acts from then on;
 * - with restart_after_crash off, a backend's crash ends the postmaster (postmaster.c PostmasterStateMachine:
 *   "shutting down because restart_after_crash is off", exit 1), which systemd's Restart=on-failure sees;
 * - after a segment's push failed three times the archiver sleeps until its latch is set or a minute has passed
 *   (pgarch.c: NUM_ARCHIVE_RETRIES, PGARCH_AUTOWAKE_INTERVAL), and a reload sets it (what cemetery-db's
 *   push_current_wal relies on before a restore);
 * - a push that hangs, ended by archive_command's bound (timeout's exit 124), is a failure PostgreSQL counts and tries
 *   again, not one that ends the archiver (pgarch.c pgarch_archiveXlog: only a signal or a status over 125 does).
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { sleep, waitUntil } from '../scripts/lib/wait.cjs';
import { startPostgresServer } from './support/postgres-server';
import { tempDir } from './support/temp-dir';

const ROOT = path.join(__dirname, '..');

const ARCHIVE_TIMEOUT_SECONDS = 1;

async function startArchiving(extra: Record<string, string> = {}) {
  const stateDir = tempDir('pg-start');
  const archive = path.join(stateDir, 'archive');
  mkdirSync(archive);
  chmodSync(archive, 0o777); // as root, the server runs as the postgres user
  /** While this file exists every push fails, as one to an unreachable bucket would. */
  const outage = path.join(stateDir, 'outage');
  const settings = {
    archive_mode: 'on',
    archive_command: `test ! -e ${outage} && cp %p ${archive}/%f`,
    archive_timeout: String(ARCHIVE_TIMEOUT_SECONDS),
    // Its longest: a switch within the test can only come from archive_timeout.
    checkpoint_timeout: '1d',
    ...extra,
  };
  const db = await startPostgresServer(stateDir, settings);
  const client = new pg.Client({ connectionString: db.url });
  client.on('error', () => undefined); // a crash test ends the server under it
  await client.connect();
  const one = async (sql: string) => Object.values((await client.query(sql)).rows[0] ?? {})[0] as string;
  /** The segment of a record written now (an important record: one archive_timeout switches out). */
  const write = () => one("SELECT pg_walfile_name(pg_logical_emit_message(false, 'cemetery-test', 'archived?'))");
  /** Whether `segment` was archived within `ms`. */
  const archivedWithin = async (segment: string, ms: number) => {
    for (const until = Date.now() + ms; Date.now() < until; await sleep(100)) {
      const last = await one('SELECT last_archived_wal FROM pg_stat_archiver');
      if (last && last >= segment) return true;
    }
    return false;
  };
  const postmasterPid = () => Number(readFileSync(path.join(db.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  return { db, client, one, write, archivedWithin, postmasterPid, outage, stop: async () => { await client.end().catch(() => undefined); await db.stop(); } };
}

test('after a start, archive_timeout does nothing until the checkpointer is woken; a reload wakes it, and the write is archived', async () => {
  // A race in principle: a checkpointer that reaches its first sleep after recovery has ended counts archive_timeout.
  // It starts first and has far less to do than the startup process, so that is rare (never seen in 10 starts here,
  // idle or loaded); a start where it happened proves nothing either way, and a new server is started instead.
  const starts: string[] = [];
  for (let attempt = 1; attempt <= 3; attempt++) {
    const pgs = await startArchiving();
    try {
      const segment = await pgs.write();
      // Ten archive_timeouts go by: the checkpointer sleeps on (checkpoint_timeout, a day).
      if (await pgs.archivedWithin(segment, 10 * ARCHIVE_TIMEOUT_SECONDS * 1000)) {
        starts.push('archived by itself');
        continue;
      }
      starts.push('waited');
      expect(await pgs.one('SELECT num_timed FROM pg_stat_checkpointer')).toBe('0');
      await pgs.one('SELECT pg_reload_conf()');
      expect(await pgs.archivedWithin(segment, 30000)).toBe(true);
      // From then on it acts by itself.
      expect(await pgs.archivedWithin(await pgs.write(), 30000)).toBe(true);
      break;
    } finally {
      await pgs.stop();
    }
  }
  expect(starts).toContain('waited');
});

test('with restart_after_crash off, a backend killed with SIGKILL ends the postmaster instead of its restarting itself', async () => {
  const pgs = await startArchiving({ restart_after_crash: 'off' });
  try {
    const postmaster = pgs.postmasterPid();
    const victim = new pg.Client({ connectionString: pgs.db.url });
    victim.on('error', () => undefined);
    await victim.connect();
    const backend = Number((await victim.query('SELECT pg_backend_pid() AS pid')).rows[0].pid);
    process.kill(backend, 'SIGKILL');
    const alive = () => { try { process.kill(postmaster, 0); return true; } catch { return false; } };
    for (const until = Date.now() + 30000; alive() && Date.now() < until; await sleep(100));
    expect(alive()).toBe(false);
  } finally {
    await pgs.stop();
  }
});

test('after a push failed three times the archiver waits a minute before trying again, unless a reload wakes it', async () => {
  const pgs = await startArchiving({ archive_timeout: '0' }); // no switch but the test's own
  try {
    writeFileSync(pgs.outage, '');
    await pgs.write();
    const segment = await pgs.one('SELECT pg_walfile_name(pg_switch_wal())');
    await waitUntil('three failed pushes', async () => Number(await pgs.one('SELECT failed_count FROM pg_stat_archiver')) >= 3, { timeoutMs: 30000, intervalMs: 100 });
    expect(await pgs.one('SELECT last_failed_wal FROM pg_stat_archiver')).toBe(segment);
    // The bucket is back, and nothing wakes the archiver: it sleeps on (its minute is far from over).
    rmSync(pgs.outage);
    expect(await pgs.archivedWithin(segment, 10000)).toBe(false);
    expect(await pgs.one('SELECT failed_count FROM pg_stat_archiver')).toBe('3');
    await pgs.one('SELECT pg_reload_conf()');
    expect(await pgs.archivedWithin(segment, 10000)).toBe(true);
  } finally {
    await pgs.stop();
  }
});

test('a push that hangs is ended after archive_command\'s bound: PostgreSQL counts it failed, and the next try archives the segment', async () => {
  const dir = tempDir('archive-push');
  chmodSync(dir, 0o777); // the archiver runs as the postgres user when the tests run as root
  const archive = path.join(dir, 'archive');
  mkdirSync(archive);
  chmodSync(archive, 0o777);
  const hungPid = path.join(dir, 'hung.pid');
  // pgBackRest's part, on PATH: its first push hangs (as one to a bucket that never answers), the next copies.
  writeFileSync(path.join(dir, 'pgbackrest'), `#!/bin/sh
[ "$1 $2 $3" = "--stanza=cemetery --log-level-file=info archive-push" ] || exit 97
if [ ! -e ${hungPid} ]; then echo $$ > ${hungPid}; exec sleep 600; fi
cp "$4" ${archive}/
`, { mode: 0o755 });
  // The command as backups.sh writes it, with a 2 s bound here.
  const written = /^archive_command = '(.+)'$/m.exec(readFileSync(path.join(ROOT, 'scripts/host/backups.sh'), 'utf8'))![1];
  const archiveCommand = written.replace('$ARCHIVE_PUSH_SECONDS', '2').replace('$STANZA', 'cemetery');
  expect(archiveCommand).toBe('timeout --foreground 2 pgbackrest --stanza=cemetery --log-level-file=info archive-push %p');
  const pgs = await startArchiving({ archive_timeout: '0', archive_command: `PATH=${dir}:$PATH ${archiveCommand}` });
  try {
    await pgs.write();
    const segment = await pgs.one('SELECT pg_walfile_name(pg_switch_wal())');
    expect(await pgs.archivedWithin(segment, 30000)).toBe(true);
    expect(existsSync(path.join(archive, segment))).toBe(true);
    expect(await pgs.one("SELECT failed_count || ' ' || last_failed_wal FROM pg_stat_archiver")).toBe(`1 ${segment}`);
    // The hung push is gone, not left behind.
    const pid = Number(readFileSync(hungPid, 'utf8'));
    expect(() => process.kill(pid, 0)).toThrow(/ESRCH/);
  } finally {
    await pgs.stop();
  }
});
