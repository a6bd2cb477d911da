/**
 * cemetery-s3-credentials (scripts/host/cemetery-s3-credentials.sh), the real script, against a metadata service of
 * the test's own that answers as IMDSv2 does (a token from PUT, then only requests that carry it): what it writes
 * for pgBackRest, when it leaves the file alone, what it refuses; and, through shims of curl and jq that record
 * their arguments, that neither a credential nor the metadata token is ever an argument (ps shows arguments).
 */
import { execFile, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { ROOT } from './support/db';
import { tempDir } from './support/temp-dir';

const SCRIPT = path.join(ROOT, 'scripts', 'host', 'cemetery-s3-credentials.sh');
const ROLE = 'cemetery-dev-host-role-3f2a1b9';
const TOKEN = 'AQAEAImdsTokenOfTheTest0123456789==';
type Credentials = { Code: string; AccessKeyId?: string; SecretAccessKey?: string; Token?: string; Expiration?: string };
const issued = (n: number): Credentials => ({
  Code: 'Success',
  AccessKeyId: `ASIAEXAMPLE00000000${n}`,
  SecretAccessKey: `wJalrXUtnFEMI/K7MDENG/bPxRfiCYsecret${n}`,
  Token: `IQoJb3JpZ2luX2VjEsessiontoken${n}//////////wEaDGV1LWNlbnRyYWwtMSJHMEUCIQ`,
  Expiration: `2026-11-30T1${n}:00:00Z`,
});

/** The metadata service: `credentials` answers for ROLE, `roles` lists the profile's role (empty: no profile). */
const imds = { credentials: issued(1) as Credentials | string, roles: `${ROLE}\n`, requests: [] as string[] };
let server: http.Server;
let url = '';
beforeAll(async () => {
  server = http.createServer((req, res) => {
    imds.requests.push(`${req.method} ${req.url}`);
    const base = '/latest/meta-data/iam/security-credentials/';
    if (req.method === 'PUT' && req.url === '/latest/api/token' && req.headers['x-aws-ec2-metadata-token-ttl-seconds']) return res.end(TOKEN);
    if (req.method !== 'GET' || req.headers['x-aws-ec2-metadata-token'] !== TOKEN) return res.writeHead(401).end();
    if (req.url === base && imds.roles) return res.end(imds.roles);
    if (req.url === `${base}${ROLE}` && imds.roles) return res.end(typeof imds.credentials === 'string' ? imds.credentials : JSON.stringify(imds.credentials));
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise((resolve) => server.close(resolve)));

const dir = tempDir('s3-credentials');
const conf = path.join(dir, 'conf.d', 'cemetery-s3-credentials.conf');
const argvLog = path.join(dir, 'argv.log');
// Shims ahead of the real curl and jq on the PATH: each records its arguments, then runs the real one.
const shims = path.join(dir, 'bin');
for (const tool of ['curl', 'jq']) {
  const real = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
  const shim = path.join(shims, tool);
  mkdirSync(shims, { recursive: true });
  writeFileSync(shim, `#!/bin/sh\nprintf '%s\\n' "${tool} $*" >> '${argvLog}'\nexec '${real}' "$@"\n`);
  chmodSync(shim, 0o755);
}
const group = spawnSync('id', ['-gn'], { encoding: 'utf8' }).stdout.trim();
/** Runs the script (not synchronously: the metadata service answers from this process). */
const refresh = () =>
  new Promise<{ status: number; stdout: string; stderr: string }>((resolve) => {
    execFile('bash', [SCRIPT], { env: { PATH: `${shims}:${process.env.PATH}`, IMDS: url, CONF: conf, CONF_GROUP: group }, encoding: 'utf8' }, (err, stdout, stderr) =>
      resolve({ status: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });

test('writes the role\'s credentials for pgBackRest, 0640 to the group it is given, and nothing when they have not changed', async () => {
  const first = await refresh();
  expect(first.stderr).toBe('');
  expect(first.status).toBe(0);
  expect(first.stdout).toBe(`cemetery-s3-credentials: role ${ROLE}'s credentials until 2026-11-30T11:00:00Z\n`);
  const c = issued(1);
  expect(readFileSync(conf, 'utf8')).toBe(`# cemetery-backend: role ${ROLE}, expires ${c.Expiration} (cemetery-s3-credentials)\n[global]\nrepo1-s3-key=${c.AccessKeyId}\nrepo1-s3-key-secret=${c.SecretAccessKey}\nrepo1-s3-token=${c.Token}\n`);
  expect((statSync(conf).mode & 0o777).toString(8)).toBe('640');
  const written = statSync(conf).mtimeMs;
  const again = await refresh();
  expect([again.status, again.stdout]).toEqual([0, '']);
  expect(statSync(conf).mtimeMs).toBe(written);
  // IMDSv2: a token first, every read with it.
  expect(imds.requests.slice(0, 3)).toEqual(['PUT /latest/api/token', 'GET /latest/meta-data/iam/security-credentials/', `GET /latest/meta-data/iam/security-credentials/${ROLE}`]);
});

test('new credentials replace the old ones whole (written beside the file, then renamed)', async () => {
  imds.credentials = issued(2);
  const r = await refresh();
  expect(r.status).toBe(0);
  expect(readFileSync(conf, 'utf8')).toContain(`repo1-s3-token=${issued(2).Token}\n`);
  expect(readFileSync(conf, 'utf8')).not.toContain(issued(1).SecretAccessKey!);
  expect(readdirSync(path.dirname(conf))).toEqual([path.basename(conf)]);
});

test.each([
  ['no instance profile', () => { imds.roles = ''; }, /the metadata service lists no role: the instance has no instance profile/],
  ['an answer other than Success', () => { imds.credentials = { Code: 'AssumeRoleUnauthorizedAccess' }; }, new RegExp(`answered AssumeRoleUnauthorizedAccess for role ${ROLE}, not Success`)],
  ['an answer without a session token', () => { imds.credentials = { ...issued(3), Token: undefined }; }, new RegExp(`role ${ROLE}: no session Token in the answer`)],
  ['an answer that is not JSON', () => { imds.credentials = '<html>'; }, /is not JSON/],
])('%s: refused, saying so; the credentials that worked stay', async (_what, arrange, message) => {
  const before = readFileSync(conf, 'utf8');
  const saved = { ...imds };
  arrange();
  try {
    const r = await refresh();
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(message);
    expect(readFileSync(conf, 'utf8')).toBe(before);
  } finally {
    Object.assign(imds, { credentials: saved.credentials, roles: saved.roles });
  }
});

test('no credential, nor the metadata token, was ever an argument of curl or jq', () => {
  expect(existsSync(argvLog)).toBe(true);
  const argv = readFileSync(argvLog, 'utf8');
  expect(argv).toMatch(/^curl .*latest\/api\/token/m);
  expect(argv).toMatch(/^jq /m);
  for (const secret of [TOKEN, ...[1, 2].flatMap((n) => [issued(n).SecretAccessKey!, issued(n).Token!, issued(n).AccessKeyId!])]) expect(argv).not.toContain(secret);
});
