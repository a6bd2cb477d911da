// TLS for the test PostgreSQL: a CA of its own, a server certificate for
// "localhost" only (or the names given), and a second CA that signed nothing (the wrong one).
// test/database-tls.test.ts proves sslmode=verify-full against them.
import { execFileSync } from 'node:child_process';
import { chownSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';

const openssl = (args) => execFileSync('openssl', args, { stdio: 'pipe' });
const newCa = (dir, name, cn) =>
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', path.join(dir, `${name}.key`), '-out', path.join(dir, `${name}.crt`), '-days', '2', '-subj', `/CN=${cn}`]);

/**
 * Makes the certificates in `dir` and turns TLS on in the running server
 * (ssl settings take effect on reload). Connections that do not ask for TLS
 * are unaffected. Returns the paths the tests use.
 */
export async function enableTestTls({ dir, adminUrl, dataDir, names = ['localhost'] }) {
  newCa(dir, 'ca', 'cemetery test CA');
  newCa(dir, 'wrong-ca', 'a CA that signed nothing here');
  const key = path.join(dir, 'server.key');
  const csr = path.join(dir, 'server.csr');
  const cert = path.join(dir, 'server.crt');
  const ext = path.join(dir, 'server.ext');
  writeFileSync(ext, `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}\n`);
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${names[0]}`]);
  openssl(['x509', '-req', '-in', csr, '-CA', path.join(dir, 'ca.crt'), '-CAkey', path.join(dir, 'ca.key'), '-CAcreateserial', '-out', cert, '-days', '2', '-extfile', ext]);
  // PostgreSQL reads its key only if its own user owns it, mode 0600 (as root, that user is not us).
  const owner = statSync(dataDir);
  chownSync(key, owner.uid, owner.gid);
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(`ALTER SYSTEM SET ssl_cert_file = '${cert}'`);
    await client.query(`ALTER SYSTEM SET ssl_key_file = '${key}'`);
    await client.query('ALTER SYSTEM SET ssl = on');
    await client.query('SELECT pg_reload_conf()');
  } finally {
    await client.end();
  }
  // The reload is a signal: wait until a new session sees it.
  for (let i = 0; i < 100; i++) {
    const c = new pg.Client({ connectionString: adminUrl });
    await c.connect();
    const { rows } = await c.query('SHOW ssl');
    await c.end();
    if (rows[0].ssl === 'on') return { ca: path.join(dir, 'ca.crt'), wrongCa: path.join(dir, 'wrong-ca.crt') };
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('the test PostgreSQL did not turn TLS on after pg_reload_conf()');
}
