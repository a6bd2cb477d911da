/**
 * The `local` stack as a fleet (README: Several existing hosts): `target: ssh` with `sshHosts`, on VMs booted from a
 * provisioned host's root disk (each with a name, machine id and host keys of its own, on a loopback address of its
 * own, all sharing sshPort), `databaseMode: external` on a PostgreSQL of this machine's over TLS, and Debian's HAProxy
 * in front as the user's balancer (test/support/haproxy.ts: the target group's health check). The guests see this
 * machine, where the database and the balancer run, at qemu's gateway, 10.0.2.2.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { parseProjectConfig } from '../../infra/config';
import { HOST_LAYOUT } from '../../infra/host-steps';
import { waitUntil } from '../../scripts/lib/wait.cjs';
import { Engine } from '../standin/engine';
import { findHaproxy, startHaproxy } from '../support/haproxy';
import { startLoad } from '../support/load';
import { startPostgresServer } from '../support/postgres-server';
import { changed, stackFiles } from '../support/pulumi-mocks';
import { bootVm, deployKeyConfig, freeVmPorts, LOAD_PATH, mirrorConfig, runOperator, stackOutputs, startStackMirror, upsOf, type BootedVm } from './local-stack';

/** The external database's name for the guests (their /etc/hosts: 10.0.2.2), the name its certificate is for. */
export const FLEET_DB_HOST = 'db.cemetery.test';
/** The guests' address for this machine (qemu's gateway): where the balancer's connections come from. */
const GATEWAY = '10.0.2.2';

/**
 * The register's database as a user's own PostgreSQL: a login role that owns its database, reached over TLS with
 * the server's certificate and name checked (sslmode=verify-full against the test CA, which the guests trust).
 */
async function startExternalDatabase() {
  // Not tempDir (test/support): npm run bench:fleet-upgrade runs this outside jest.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cemetery-fleet-db-'));
  const server = await startPostgresServer(dir, {}, [FLEET_DB_HOST]);
  const password = randomBytes(18).toString('base64url');
  const admin = new pg.Client({ connectionString: server.url });
  await admin.connect();
  try {
    await admin.query(`CREATE ROLE cemetery LOGIN PASSWORD '${password}'`);
    await admin.query('CREATE DATABASE register OWNER cemetery');
  } finally {
    await admin.end();
  }
  const port = new URL(server.url).port;
  return {
    caPem: readFileSync(server.ca!, 'utf8'),
    password,
    /** The stack's databaseUrl: the hosts' system CA bundle holds the test CA (trustTestService). */
    guestUrl: `postgres://cemetery:${password}@${FLEET_DB_HOST}:${port}/register?sslmode=verify-full&sslrootcert=/etc/ssl/certs/ca-certificates.crt`,
    /** A query as the superuser, from this machine. */
    async query(sql: string) {
      const client = new pg.Client({ connectionString: server.url.replace(/\/postgres$/, '/register') });
      await client.connect();
      try {
        return (await client.query(sql)).rows;
      } finally {
        await client.end();
      }
    },
    async stop() {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `hosts` VMs from `rootFrom`, provisioned as one fleet by the `local` stack with sshHosts; nothing run yet. */
export async function startFleet(opts: { hosts: number; rootFrom: string; report: Record<string, unknown>; log?: (line: string) => void; overrides?: Record<string, string> }) {
  const { report } = opts;
  const log = opts.log ?? (() => {});
  const haproxy = findHaproxy();
  if (!haproxy) throw new Error('haproxy is required for the fleet scenarios (apt-get install haproxy; .ci/run installs it)');
  const ports = await freeVmPorts();
  // The database starts on this machine while the VMs boot.
  const databaseStarted = Promise.allSettled([startExternalDatabase()]);
  const booted = await Promise.allSettled(
    Array.from({ length: opts.hosts }, (_, i) => bootVm({ report: (report[`host${i + 1}`] = {}) as Record<string, unknown>, address: `127.0.0.${i + 2}`, hostname: `cemetery-fleet-${i + 1}`, ports, rootFrom: opts.rootFrom })),
  );
  const [database] = await databaseStarted;
  const hosts = booted.flatMap((b) => (b.status === 'fulfilled' ? [b.value] : []));
  const cleanups: Array<() => unknown> = hosts.map((h) => h.stop);
  if (database.status === 'fulfilled') cleanups.push(database.value.stop);
  const cleanUp = async () => {
    for (const c of cleanups.reverse()) await c();
  };
  try {
    const failedBoot = booted.find((b) => b.status === 'rejected');
    if (failedBoot) throw failedBoot.reason;
    if (database.status === 'rejected') throw database.reason;
    const db = database.value;
    for (const h of hosts) await h.trustTestService(FLEET_DB_HOST, db.caPem);
    const mirror = await startStackMirror();
    cleanups.push(mirror.close);

    // The `local` stack turned into a fleet, as a user would write it: the hosts with their keys, the balancer's
    // address, the database's URL; no data disk and no certificate of its own (the balancer terminates HTTPS).
    const config = changed(
      { ...stackFiles().local, 'cemetery-backend:sshPort': String(ports.ssh), ...mirrorConfig(mirror), ...deployKeyConfig(hosts[0].target) },
      {
        'cemetery-backend:sshHost': undefined,
        'cemetery-backend:dataVolumeDevice': undefined,
        'cemetery-backend:certificateIssuer': undefined,
        'cemetery-backend:sshHosts': JSON.stringify(hosts.map((h) => ({ host: h.target.host, hostKey: h.hostKey() }))),
        'cemetery-backend:balancerCidrs': JSON.stringify([`${GATEWAY}/32`]),
        'cemetery-backend:databaseMode': 'external',
        'cemetery-backend:databaseUrl': db.guestUrl,
        ...opts.overrides,
      },
    );
    const engine = new Engine(log);
    const ups = upsOf({ engine, config: () => config, targets: hosts.map((h) => h.target), report, log, tag: '[fleet] ' });
    const domain = config['cemetery-backend:domainName'];
    // The user's balancer is there before the first up, in front of every host's port 80; a host is in once its
    // checks pass.
    const balancer = await startHaproxy(haproxy, hosts.map((h, i) => ({ name: `host${i + 1}`, host: h.target.host, port: ports.http })));
    cleanups.push(balancer.stop);

    return {
      hosts,
      config,
      mirror,
      /** Where the app listens on each host's loopback. */
      appPort: parseProjectConfig(config, 'local').appPort,
      db,
      ...ups,
      balancer,
      /** Until the balancer's checks pass on every host. */
      everyHostUp: () => waitUntil('every host UP behind the balancer', async () => Object.values(await balancer.states()).every((s) => s === 'UP'), { timeoutMs: 120000, intervalMs: 500 }),
      /**
       * Load through the balancer, as the public would send it past its HTTPS (plain HTTP from here): the API and
       * /version, whose answers must come from one of `releases`; two connections pausing 200 ms, as the single
       * host's load (local-stack.ts).
       */
      load(releases: () => string[]) {
        return startLoad(balancer.url, [LOAD_PATH, '/version'], { connections: 2, pauseMs: 200, host: domain, timeoutSeconds: 30, releases });
      },
      /** `npm run cemetery -- <argv>` against the fleet, as an operator runs it (the deploy key is the VMs' login key). */
      operator: async (argv: string[]) => runOperator(hosts[0].state, hosts[0].target.keyFile, await stackOutputs(config), argv),
      /** Every host's live release, in order. */
      lives: () => Promise.all(hosts.map((h) => h.live())),
      /** The PM2 daemon's pid on `host` (the app user's). */
      pm2Daemon: async (host: BootedVm) => Number((await host.root(`pgrep -u ${HOST_LAYOUT.appUser} -f '^PM2 v'`)).trim()),
      stop: cleanUp,
    };
  } catch (err) {
    await cleanUp();
    throw err;
  }
}
export type Fleet = Awaited<ReturnType<typeof startFleet>>;
