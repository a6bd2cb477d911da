/**
 * Test plumbing: Debian's HAProxy (2.6) standing in for the ALB in front of a fleet of hosts, as a user's own
 * balancer would stand in front of `sshHosts` (README: Several existing hosts).
 * - Health: the target group's check (infra/balancer.ts HEALTH_CHECK): GET /readyz answered 200, every 10 s, a
 *   5 s timeout, out after 2 failures, back after 2 passes.
 * - Retries (its own, stated: the ALB retries nothing a test could copy): a request whose connection to a host is
 *   refused is sent again, up to 3 times, each time to another host (`retries 3`, `option redispatch 1`,
 *   `retry-on conn-failure empty-response`); so is a GET or HEAD the host closed before any answer (as a host's Caddy
 *   does when its app cannot be reached: scripts/host/caddyfile.sh), never another method, which the app may have
 *   acted on (`http-request disable-l7-retry unless METH_GET`: HAProxy's METH_GET is GET and HEAD).
 * - It appends the client's address to X-Forwarded-For (`option forwardfor`), as the hosts expect of a balancer.
 * Needs a haproxy binary: $HAPROXY or haproxy on PATH (.ci/run installs Debian's package).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { HEALTH_CHECK } from '../../infra/balancer';
import { freePort } from '../../scripts/lib/ports.cjs';
import { sleep, waitUntil } from '../../scripts/lib/wait.cjs';

export function findHaproxy(): string | undefined {
  if (process.env.HAPROXY) return process.env.HAPROXY;
  try {
    return execFileSync('sh', ['-c', 'command -v haproxy || ls /usr/sbin/haproxy'], { encoding: 'utf8' }).trim().split('\n')[0] || undefined;
  } catch {
    return undefined;
  }
}

export type Backend = { name: string; host: string; port: number };

/** The configuration, from the target group's settings; `port` is the balancer's own. */
export function haproxyConfig(port: number, backends: Backend[], adminSocket: string): string {
  return `global
	stats socket ${adminSocket} mode 600 level admin

defaults
	mode http
	timeout connect 3s
	timeout client 60s
	timeout server 60s
	timeout check ${HEALTH_CHECK.timeout}s
	retries 3
	option redispatch 1
	retry-on conn-failure empty-response
	option forwardfor

frontend web
	bind 127.0.0.1:${port}
	http-request disable-l7-retry unless METH_GET
	default_backend hosts

backend hosts
	balance roundrobin
	option httpchk GET ${HEALTH_CHECK.path}
	http-check expect status ${HEALTH_CHECK.matcher}
	default-server inter ${HEALTH_CHECK.interval}s fall ${HEALTH_CHECK.unhealthyThreshold} rise ${HEALTH_CHECK.healthyThreshold}
${backends.map((b) => `\tserver ${b.name} ${b.host}:${b.port} check`).join('\n')}
`;
}

export async function startHaproxy(haproxy: string, backends: Backend[]) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cemetery-haproxy-'));
  const port = await freePort();
  const adminSocket = path.join(dir, 'admin.sock');
  const config = path.join(dir, 'haproxy.cfg');
  writeFileSync(config, haproxyConfig(port, backends, adminSocket));
  execFileSync(haproxy, ['-c', '-q', '-f', config]);
  let stderr = '';
  const child: ChildProcess = spawn(haproxy, ['-db', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr!.on('data', (d) => (stderr += d));

  /** A command on the admin socket, and its answer. */
  const admin = (command: string) =>
    new Promise<string>((resolve, reject) => {
      const socket = net.connect(adminSocket, () => socket.end(`${command}\n`));
      let out = '';
      socket.on('data', (d) => (out += d));
      socket.on('end', () => resolve(out));
      socket.on('error', reject);
    });
  /** Each server's row of `show stat` (CSV: svname 1, stot 7, wretr 15, wredis 16, status 17), by server name. */
  const servers = async (): Promise<Record<string, string[]>> =>
    Object.fromEntries(
      (await admin('show stat'))
        .split('\n')
        .filter((l) => l.startsWith('hosts,') && !l.startsWith('hosts,BACKEND'))
        .map((l) => l.split(','))
        .map((f) => [f[1], f]),
    );
  /** Each server's state as the health checks left it: UP, DOWN, or a transition (e.g. "UP 1/2"). */
  const states = async (): Promise<Record<string, string>> => Object.fromEntries(Object.entries(await servers()).map(([name, f]) => [name, f[17]]));
  await waitUntil('haproxy answering on its admin socket', async () => (await states().catch(() => undefined)) !== undefined, { timeoutMs: 10000, intervalMs: 100 });
  return {
    url: `http://127.0.0.1:${port}`,
    states,
    /**
     * Every change of a server's state from now on, in seconds from `since` (default now), e.g. "28.4 s host1 DOWN",
     * until `stop()` (polled every `intervalMs`).
     */
    watch({ since = Date.now(), intervalMs = 500 } = {}) {
      const changes: Array<{ at: number; server: string; state: string }> = [];
      const last: Record<string, string> = {};
      let watching = true;
      const polling = (async () => {
        while (watching) {
          const now = await states().catch(() => ({}) as Record<string, string>);
          for (const [server, state] of Object.entries(now)) {
            if (last[server] !== undefined && last[server] !== state) changes.push({ at: (Date.now() - since) / 1000, server, state });
            last[server] = state;
          }
          await sleep(intervalMs);
        }
      })();
      return {
        changes,
        /** The changes as lines: "<seconds> s <server> <state>". */
        lines: () => changes.map((c) => `${c.at.toFixed(1)} s ${c.server} ${c.state}`),
        async stop() {
          watching = false;
          await polling;
          return changes;
        },
      };
    },
    /**
     * Sessions each server has taken so far (`stot`; health checks are not sessions): which host answered, in the
     * balancer's own count, where a worker's pid cannot tell (two hosts provisioned alike can give theirs the same pids).
     */
    async sessions(): Promise<Record<string, number>> {
      return Object.fromEntries(Object.entries(await servers()).map(([name, f]) => [name, Number(f[7])]));
    },
    /** Requests HAProxy sent again (retries) and sent to another server (redispatches), per server. */
    async retries(): Promise<Record<string, { retried: number; redispatched: number }>> {
      return Object.fromEntries(Object.entries(await servers()).map(([name, f]) => [name, { retried: Number(f[15]), redispatched: Number(f[16]) }]));
    },
    log: () => stderr,
    async stop() {
      child.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
