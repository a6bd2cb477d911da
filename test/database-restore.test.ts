/**
 * A stack's RDS database created from another instance's automated backups
 * (config restoreFrom + restoreSourceDatabase), under Pulumi's mocks: what
 * the program asks AWS for, what it refuses before anything is created, and
 * that the restore keys can never replace a database that exists.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { restoreProblems } from '../infra/database';
import { ROOT } from './support/db';
import { MOCK_RDS_INSTANCES, runProgram, stackFiles, withUserSecrets, type RecordedResource } from './support/pulumi-mocks';

const STACKS = stackFiles();
const SOURCE = 'cemetery-prod-pg-1a2b3c4';
const DAY = 24 * 3600 * 1000;
const isoAgo = (ms: number) => new Date(Date.now() - ms).toISOString().replace(/\.\d+Z$/, 'Z');

const devWith = (extra: Record<string, string>) => ({ ...withUserSecrets(STACKS.dev), ...extra });
const restoreKeys = (time: string, source = SOURCE) => ({ 'cemetery-backend:restoreFrom': time, 'cemetery-backend:restoreSourceDatabase': source });
const database = (resources: RecordedResource[]) => resources.find((r) => r.type === 'aws:rds/instance:Instance')!;

describe('restoring a new stack\'s database from another instance', () => {
  test('latest: the instance is created from the source\'s latest restorable time, with the stack\'s own password, network and settings', async () => {
    const { resources, ignoreChanges, outputs } = await runProgram('dev', devWith(restoreKeys('latest')));
    const db = database(resources);
    expect(db.inputs.restoreToPointInTime).toEqual({ sourceDbInstanceIdentifier: SOURCE, useLatestRestorableTime: true });
    // The source's database comes with the restore; the rest is this stack's.
    expect(db.inputs.dbName).toBeUndefined();
    expect(db.inputs).toMatchObject({ username: 'cemetery', storageEncrypted: true, publiclyAccessible: false, backupRetentionPeriod: 1, instanceClass: 'db.t4g.micro' });
    expect(db.inputs.password).toBeDefined();
    expect(ignoreChanges[db.name]).toContain('restoreToPointInTime');
    expect(outputs.databaseIdentifier.value).toBe(`${db.name}-1a2b3c4`);
  });

  test('a point in time: passed as AWS takes it (RFC 3339, UTC)', async () => {
    const time = isoAgo(2 * DAY);
    const { resources } = await runProgram('dev', devWith(restoreKeys(time)));
    expect(database(resources).inputs.restoreToPointInTime).toEqual({ sourceDbInstanceIdentifier: SOURCE, restoreTime: time });
  });

  test('without the keys the database is created empty, and the restore input is ignored all the same: adding or removing the keys later replaces nothing', async () => {
    const { resources, ignoreChanges } = await runProgram('dev', withUserSecrets(STACKS.dev));
    const db = database(resources);
    expect(db.inputs.restoreToPointInTime).toBeUndefined();
    expect(db.inputs.dbName).toBe('cemetery');
    expect(ignoreChanges[db.name]).toContain('restoreToPointInTime');
  });

  test('the stack names its database for others to restore from; an on-host database has no identifier', async () => {
    expect((await runProgram('prod', withUserSecrets(STACKS.prod))).outputs.databaseIdentifier.value).toBe('cemetery-prod-pg-1a2b3c4');
    expect((await runProgram('staging', withUserSecrets(STACKS.staging))).outputs.databaseIdentifier.value).toBeUndefined();
  });
});

describe('a restore that cannot work fails the preview, naming the key', () => {
  test.each([
    ['a source and no time', { 'cemetery-backend:restoreSourceDatabase': SOURCE }, /cemetery-backend:restoreFrom = undefined: required with restoreSourceDatabase: latest, or a UTC time/],
    ['a time and no source', { 'cemetery-backend:restoreFrom': 'latest' }, /cemetery-backend:restoreSourceDatabase = undefined: required with restoreFrom: the RDS instance whose backups to restore/],
    ['a local time', restoreKeys('2026-11-29 03:00'), /cemetery-backend:restoreFrom = "2026-11-29 03:00": expected latest, or a UTC time such as 2026-11-29T03:00:00Z/],
    ['a time zone other than UTC', restoreKeys('2026-11-29T03:00:00+01:00'), /cemetery-backend:restoreFrom = "2026-11-29T03:00:00\+01:00": expected latest, or a UTC time/],
    ['a time in the future', restoreKeys('2999-01-01T00:00:00Z'), /cemetery-backend:restoreFrom = "2999-01-01T00:00:00Z": is in the future/],
    ['a malformed identifier', restoreKeys('latest', 'Cemetery_prod'), /cemetery-backend:restoreSourceDatabase = "Cemetery_prod": expected an RDS instance identifier/],
  ])('%s', async (_what, extra, message) => {
    await expect(runProgram('dev', devWith(extra))).rejects.toThrow(message);
  });

  test('on a stack whose PostgreSQL is on the host: nothing to restore from', async () => {
    await expect(runProgram('staging', { ...withUserSecrets(STACKS.staging), ...restoreKeys('latest') })).rejects.toThrow(
      /cemetery-backend:restoreFrom = "latest": on-host PostgreSQL without backupBucket has no backups[^\n]*: there is nothing to restore from \(set backupBucket, or use databaseMode rds\)/,
    );
  });

  // Checked once the source is read: the error is thrown inside the apply that feeds the instance, which the
  // Pulumi runtime reports as the program's error, nothing created (infra/database.ts restoreInput). Jest cannot
  // host an unhandled rejection, so a process of its own runs the check as the runtime would.
  const checkedRestore = (source: string, time: string) => {
    const r = spawnSync(path.join(ROOT, 'node_modules', '.bin', 'tsx'), [path.join(ROOT, 'test', 'fixtures', 'restore-check.ts'), source, time], { encoding: 'utf8', cwd: ROOT });
    return { status: r.status, out: r.stdout + r.stderr };
  };

  test.each([
    ['before the source\'s backups begin', SOURCE, isoAgo(30 * DAY), /^error: Cannot restore the database from cemetery-prod-pg-1a2b3c4:\n {2}cemetery-backend:restoreFrom = "[^"]+": cemetery-prod-pg-1a2b3c4 keeps 14 days of backups, so the earliest time it can restore is \S+ at best\n\(If this stack restored its database already, remove restoreFrom and restoreSourceDatabase: they are read only when it is created\.\)\n$/],
    ['a source that keeps no backups', 'cemetery-dev-pg-nobackup', 'latest', /^error: [^\n]+\n {2}cemetery-backend:restoreSourceDatabase = "cemetery-dev-pg-nobackup": it keeps no automated backups \(backup retention 0 days\): there is nothing to restore from\n\(If this stack[^\n]+\n$/],
    ['a source on another PostgreSQL major', 'legacy-pg16', 'latest', /^error: [^\n]+\n {2}cemetery-backend:postgresVersion = "17": legacy-pg16 runs PostgreSQL 16.4: set postgresVersion 16 to restore it \(upgrade afterwards\)\n\(If this stack[^\n]+\n$/],
    // The provider's own error (the mocks cannot say what AWS's would).
    ['a source that does not exist', 'no-such-db', 'latest', /^unhandled: /],
  ])('%s: the program fails with the message alone (checked against the source at preview)', (_what, source, time, message) => {
    const { status, out } = checkedRestore(source, time);
    expect(out).toMatch(message);
    expect(status).toBe(1);
  });

  test('a restore that can work passes the check', () => {
    expect(checkedRestore(SOURCE, 'latest')).toEqual({ status: 0, out: `${JSON.stringify({ sourceDbInstanceIdentifier: SOURCE, useLatestRestorableTime: true })}\n` });
  });
});

describe('restoreProblems: the window AWS can restore from', () => {
  const now = Date.parse('2026-11-29T12:00:00Z');
  const source = MOCK_RDS_INSTANCES[SOURCE];
  const at = (time: string) => restoreProblems({ source: SOURCE, time }, source, '17', now);

  test('inside the retention, and up to about five minutes ago: no problem', () => {
    expect(at('2026-11-16T12:00:01Z')).toEqual([]);
    expect(at('2026-11-29T11:54:00Z')).toEqual([]);
    expect(at('latest')).toEqual([]);
  });

  test('older than the retention, or newer than AWS can restore: each says what to do', () => {
    expect(at('2026-11-15T11:59:59Z')).toEqual([
      `cemetery-backend:restoreFrom = "2026-11-15T11:59:59Z": ${SOURCE} keeps 14 days of backups, so the earliest time it can restore is 2026-11-15T12:00:00.000Z at best`,
    ]);
    expect(at('2026-11-29T11:58:00Z')).toEqual(['cemetery-backend:restoreFrom = "2026-11-29T11:58:00Z": AWS restores up to its latest restorable time, about 5 minutes ago: use latest, or an earlier time']);
  });

  test('a PostgreSQL version of the same major (17 and 17.6) is the same database', () => {
    expect(restoreProblems({ source: SOURCE, time: 'latest' }, source, '17.2', now)).toEqual([]);
  });
});
