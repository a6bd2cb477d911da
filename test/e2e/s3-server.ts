/**
 * Test-only plumbing: an S3-compatible server on loopback for the backups of the VM's PostgreSQL, which the
 * guest reaches at 10.0.2.2 under the name `s3.cemetery.test` (the harness puts it in the guest's /etc/hosts
 * and the server's CA in its trust store; the product does neither).
 *
 * s3rver 3.7.1 (npm): files on disk behind the S3 REST API, over HTTPS. It checks AWS Signature V4 against the
 * key pair registered here, so a wrong secret is refused as S3 would refuse it. pgBackRest uses what it
 * implements: PUT, GET, HEAD and DELETE of objects, ListObjectsV2 with prefix, delimiter and continuation,
 * multipart uploads and multi-object delete, path-style (its listing's common prefixes corrected below). What it does not emulate: IAM policies and bucket
 * policies (any valid signature may do anything), server-side encryption, versioning and lifecycle rules,
 * object lock, and S3's consistency and latency; so a policy that confines a key to a prefix is not proven here.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import S3rver from 's3rver';
import { freePort } from '../../scripts/lib/ports.cjs';
import { tempDir } from '../support/temp-dir';

/** The name the guest knows the server by: pgBackRest checks the certificate against a DNS name, not an address. */
export const S3_TEST_NAME = 's3.cemetery.test';

export async function startS3Server(bucket: string) {
  const dir = tempDir('s3');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', `/CN=${S3_TEST_NAME}`, '-addext', `subjectAltName=DNS:${S3_TEST_NAME}`, '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { stdio: 'ignore' });
  const accessKeyId = `AKTEST${randomBytes(6).toString('hex').toUpperCase()}`;
  const secretAccessKey = randomBytes(24).toString('base64url');
  // s3rver checks signatures against the accounts it knows: this key pair, and its own built-in one.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  (require('s3rver/lib/models/account') as { DUMMY_ACCOUNT: { createKeyPair(id: string, secret: string): void } }).DUMMY_ACCOUNT.createKeyPair(accessKeyId, secretAccessKey);
  const port = await freePort();
  const server = new S3rver({
    address: '127.0.0.1',
    port,
    silent: true,
    directory: path.join(dir, 'data'),
    key: readFileSync(path.join(dir, 'key.pem')),
    cert: readFileSync(path.join(dir, 'cert.pem')),
    vhostBuckets: false,
    configureBuckets: [{ name: bucket, configs: [] }],
  });
  // Test plumbing: an outage of the store, begun by a matching request ("GET /bucket?list-type=2&prefix=…", decoded):
  // for its length every request is answered 503 ServiceUnavailable, as S3 answers when it cannot serve.
  let outage: { match: RegExp; ms: number; until?: number; refused: number; ended: () => void } | undefined;
  (server as unknown as { middleware: Array<(ctx: OutageContext, next: () => Promise<void>) => Promise<void>> }).middleware.unshift(async (ctx, next) => {
    if (outage) {
      if (outage.until === undefined && outage.match.test(`${ctx.method} ${decodeURIComponent(ctx.url)}`)) {
        const o = outage;
        o.until = Date.now() + o.ms;
        setTimeout(() => { outage = undefined; o.ended(); }, o.ms);
      }
      if (outage.until !== undefined) {
        outage.refused++;
        ctx.status = 503;
        ctx.type = 'application/xml';
        ctx.body = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>ServiceUnavailable</Code><Message>test outage</Message></Error>';
        return;
      }
    }
    await next();
  });
  const bucketDir = path.join(dir, 'data', bucket);
  const objectFile = (key: string) => path.join(bucketDir, `${key.replace(/^\//, '')}._S3rver_object`);
  /** Every object key in the bucket, as stored (s3rver keeps each object as a file under the bucket's directory). */
  const allKeys = (): string[] => {
    const out: string[] = [];
    const walk = (d: string) => {
      for (const name of readdirSync(d)) {
        const full = path.join(d, name);
        if (statSync(full).isDirectory()) walk(full);
        else if (name.endsWith('._S3rver_object')) out.push(path.relative(bucketDir, full).replace(/\._S3rver_object$/, ''));
      }
    };
    try {
      walk(bucketDir);
    } catch {
      return [];
    }
    return out.sort();
  };
  // s3rver's listing with a delimiter rolls up a common prefix only for a "directory" that holds an object itself:
  // it does not walk deeper (stores/filesystem.js listObjects), where S3 rolls up every key that has the delimiter
  // after the prefix (ListObjectsV2, CommonPrefixes). pgBackRest's expire removes a backup's manifests first, then
  // lists the backup directories to remove the rest: s3rver hid such a directory, so its files stayed. The missing
  // prefixes are added here.
  // And a listing of more than 1,000 keys failed with 500: s3rver's continuation token is DES-encrypted
  // (controllers/bucket.js generateContinuationToken), which Node's OpenSSL 3 no longer offers. Every key comes in one
  // page here instead (so pgBackRest's paging is not exercised against this server).
  type Listing = { commonPrefixes: string[] };
  type ListOptions = { delimiter?: string; prefix?: string; startAfter?: string; maxKeys?: number };
  const store = (server as unknown as { store: { listObjects(bucket: string, o: ListOptions): Promise<Listing> } }).store;
  const listObjects = store.listObjects.bind(store);
  store.listObjects = async (name, options) => {
    const listed = await listObjects(name, { ...options, maxKeys: Infinity });
    const { delimiter = '', prefix = '', startAfter = '' } = options;
    if (!delimiter || name !== bucket) return listed;
    const rolledUp = allKeys()
      .filter((k) => k.startsWith(prefix) && k.slice(prefix.length).includes(delimiter))
      .map((k) => k.slice(0, prefix.length + k.slice(prefix.length).indexOf(delimiter) + delimiter.length))
      .filter((p) => p > startAfter);
    listed.commonPrefixes = [...new Set([...listed.commonPrefixes, ...rolledUp])].sort();
    return listed;
  };
  // s3rver deletes a multi-object delete's keys at once, and each then removes its directories once empty: two of
  // them in one directory race (stores/filesystem.js deleteObject: readdirSync and rmdir of a directory the other
  // just removed), and the request fails with 500 InternalError though every object is gone. S3 has no directories;
  // here their cleanup tolerates the race.
  const fsStore = store as unknown as { deleteObject(bucket: string, key: string): Promise<void>; getResourcePath(bucket: string, key: string, resource: string): string };
  fsStore.deleteObject = async (name, key) => {
    for (const resource of ['object', 'object.md5', 'metadata.json']) rmSync(fsStore.getResourcePath(name, key, resource), { force: true });
    const root = path.join(dir, 'data', name);
    for (let d = path.dirname(fsStore.getResourcePath(name, key, 'object')); d.startsWith(`${root}${path.sep}`); d = path.dirname(d)) {
      try {
        rmdirSync(d);
      } catch {
        break; // not empty, or another delete removed it
      }
    }
  };
  await server.run();
  return {
    bucket,
    accessKeyId,
    secretAccessKey,
    /** host:port as the guest's stack config names it (backupS3Endpoint). */
    endpoint: `${S3_TEST_NAME}:${port}`,
    caPem: readFileSync(path.join(dir, 'cert.pem'), 'utf8'),
    /** Object keys under a prefix, as stored. */
    keys: (prefix: string): string[] => allKeys().filter((k) => k.startsWith(prefix.replace(/^\//, ''))),
    /** An object's content, as stored. */
    read: (key: string) => readFileSync(objectFile(key), 'utf8'),
    /** Test plumbing: replaces an object's content, and its MD5 beside it (s3rver answers it as the ETag). */
    write(key: string, content: string) {
      mkdirSync(path.dirname(objectFile(key)), { recursive: true });
      writeFileSync(objectFile(key), content);
      writeFileSync(`${objectFile(key)}.md5`, createHash('md5').update(content).digest('hex'));
    },
    /**
     * Arms an outage of `ms` that begins with the first request matching `match`; resolves when it has ended,
     * with how many requests it refused (0 never: it resolves only once one matched).
     */
    outageFrom(match: RegExp, ms: number) {
      return new Promise<{ refused: number }>((resolve) => {
        const o = { match, ms, refused: 0, ended: () => resolve({ refused: o.refused }) };
        outage = o;
      });
    },
    /** Drops an outage that has not begun (one that has runs its course). */
    disarm() {
      if (outage?.until === undefined) outage = undefined;
    },
    close: () => server.close(),
  };
}
export type S3Server = Awaited<ReturnType<typeof startS3Server>>;
type OutageContext = { method: string; url: string; status: number; type: string; body: unknown };
