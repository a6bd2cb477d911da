/**
 * The VM tier's S3 stand-in (test/e2e/s3-server.ts) lists as S3 does where pgBackRest depends on it: a listing with a
 * delimiter rolls up every key below a prefix into a common prefix, even when no object sits directly in that
 * "directory" (pgBackRest's expire finds the backups to remove so, after removing their manifests); and a
 * multi-object delete of many keys in one directory succeeds, and a listing of more than 1,000 keys answers (pgBackRest
 * removes an expired backup so).
 */
import { createHash } from 'node:crypto';
import https from 'node:https';
import { startS3Server, type S3Server } from './e2e/s3-server';

let s3: S3Server;
let port: number;
beforeAll(async () => {
  s3 = await startS3Server('listing');
  port = Number(s3.endpoint.split(':')[1]);
});
afterAll(() => s3?.close());

/** A ListObjectsV2 request, unsigned (s3rver serves anonymous reads), and the names in its answer. */
function list(query: Record<string, string>): Promise<{ status: number; keys: string[]; prefixes: string[] }> {
  const path = `/listing?${new URLSearchParams({ 'list-type': '2', ...query })}`;
  return new Promise((resolve, reject) => {
    https
      .get({ host: '127.0.0.1', port, path, rejectUnauthorized: false }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => {
          const all = (tag: string) => [...body.matchAll(new RegExp(`<${tag}>([^<]*)</${tag}>`, 'g'))].map((m) => m[1]);
          resolve({ status: res.statusCode!, keys: all('Key'), prefixes: [...body.matchAll(/<CommonPrefixes><Prefix>([^<]*)<\/Prefix><\/CommonPrefixes>/g)].map((m) => m[1]) });
        });
      })
      .on('error', reject);
  });
}

test('a listing with a delimiter rolls up keys nested below a prefix, whether or not an object sits directly in it', async () => {
  s3.write('repo/backup/cemetery/backup.info', 'info');
  s3.write('repo/backup/cemetery/20261130-000001F/backup.manifest', 'manifest');
  s3.write('repo/backup/cemetery/20261130-000001F/pg_data/PG_VERSION.zst', 'v');
  // A backup whose manifests are gone: only deeper keys remain.
  s3.write('repo/backup/cemetery/20261130-000000F/pg_data/base/1/112.zst', 'x');
  const listed = await list({ prefix: 'repo/backup/cemetery/', delimiter: '/' });
  expect(listed.status).toBe(200);
  expect(listed.keys).toEqual(['repo/backup/cemetery/backup.info']);
  expect(listed.prefixes).toEqual(['repo/backup/cemetery/20261130-000000F/', 'repo/backup/cemetery/20261130-000001F/']);
  // Without a delimiter, every key below.
  expect((await list({ prefix: 'repo/backup/cemetery/20261130-000000F/' })).keys).toEqual(['repo/backup/cemetery/20261130-000000F/pg_data/base/1/112.zst']);
  // After start-after, only the later prefixes.
  expect((await list({ prefix: 'repo/backup/cemetery/', delimiter: '/', 'start-after': 'repo/backup/cemetery/20261130-000000F/zzz' })).prefixes).toEqual(['repo/backup/cemetery/20261130-000001F/']);
});

test('a multi-object delete of 300 keys in shared directories answers 200, and removes them all', async () => {
  const keys = Array.from({ length: 300 }, (_, i) => `gone/backup/cemetery/20261130-000000F/pg_data/base/${i % 3}/${i}.zst`);
  for (const k of keys) s3.write(k, 'x');
  s3.write('gone/backup/cemetery/backup.info', 'kept');
  const body = `<?xml version="1.0" encoding="UTF-8"?><Delete><Quiet>true</Quiet>${keys.map((k) => `<Object><Key>${k}</Key></Object>`).join('')}</Delete>`;
  const status = await new Promise<number>((resolve, reject) => {
    const headers = { 'content-type': 'application/xml', 'content-md5': createHash('md5').update(body).digest('base64'), 'content-length': Buffer.byteLength(body) };
    const req = https.request({ host: '127.0.0.1', port, path: '/listing?delete', method: 'POST', rejectUnauthorized: false, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('error', reject);
    req.end(body);
  });
  expect(status).toBe(200);
  expect(s3.keys('gone/')).toEqual(['gone/backup/cemetery/backup.info']);
});

test("a listing of 1,300 keys answers 200 with every one (s3rver's own paging failed: its token cipher is gone from OpenSSL 3)", async () => {
  for (let i = 0; i < 1300; i++) s3.write(`many/backup/cemetery/20261130-000000F/pg_data/base/16384/${i}.zst`, 'x');
  const listed = await list({ prefix: 'many/backup/cemetery/20261130-000000F/' });
  expect(listed.status).toBe(200);
  expect(listed.keys).toHaveLength(1300);
});
