/**
 * Load while something else happens (a deploy, a rollback, a killed worker),
 * judged as users see it: every answer is counted by what went wrong, if
 * anything (a status code, a reset connection, a timeout, an answer from a
 * release that should not be serving). Nothing here depends on how fast the
 * machine is: the load runs until stopped, and a scenario asserts that the
 * failures are none, not that so many requests were made.
 *
 * A few keep-alive connections, each sending one request after the other,
 * round-robin over the paths; /version answers are checked against the
 * releases allowed to answer. HTTPS certificates are verified with `ca`.
 *
 * One retry, as browsers and curl make it: a GET sent on a kept-alive
 * connection that the server closed before any answer (ECONNRESET, EPIPE) is
 * sent again once, on a new connection, and counted in `resent`. (Sent again
 * on another kept-alive connection, it could meet the same close: a Caddy
 * reload closes every idle connection at once. CI run 34, 2026-11-30.) A server closes idle connections
 * whenever it likes, and a request can cross that close on the wire (RFC 9112
 * §9.3.1; RFC 9110 §9.2.2 lets clients resend idempotent requests then). Caddy
 * does it on every config reload: its App.Stop calls Go's
 * http.Server.Shutdown, which closes idle connections first
 * (modules/caddyhttp/app.go). Node's own docs give this retry
 * (`request.reusedSocket`). A reset on a new connection, or once an answer
 * has begun, is a failure.
 */
import http from 'node:http';
import https from 'node:https';
import { sleep } from '../../scripts/lib/wait.cjs';

export type LoadResult = {
  requests: number;
  ok: number;
  /** What went wrong, by kind: "status 503: <the app's message>", "status 502", "ECONNRESET", "timeout", "release r-x answered": counts. Empty when nothing did. */
  failures: Record<string, number>;
  failed: number;
  /** The first 500 failures, each with the seconds since the load started (`startedAt`) and how long the request took: to match with the host's logs, or with a window in which failures were expected. */
  firstFailures: Array<{ at: number; took: number; kind: string }>;
  /** When the load started (ms since the epoch). */
  startedAt: number;
  /** Requests sent again because a kept-alive connection closed under them before any answer, by error code (see above). */
  resent: Record<string, number>;
  /** Answers by status code. */
  statusCodes: Record<string, number>;
  /** Releases that answered /version, with counts. */
  releases: Record<string, number>;
  seconds: number;
};

export type LoadOptions = {
  connections?: number;
  /** Seconds before a request counts as timed out: sized for an emulated VM on a busy machine. */
  timeoutSeconds?: number;
  /** Through the proxy: the site's name, as the TLS name (SNI) and the Host header, and the CA that signs its certificate. */
  host?: string;
  ca?: string;
  /** Release ids that may answer /version; any other counts as a failure. */
  releases?: () => string[];
  /** Each connection waits this long after an answer before its next request: traffic at a steady pace rather than as fast as the host answers. */
  pauseMs?: number;
};

/** Loads not stopped yet: a test that fails mid-way must not leave one hammering the host for the tests after it. */
const running = new Set<{ stop: () => void }>();
export function stopAllLoads() {
  for (const load of running) load.stop();
  running.clear();
}

const messageOf = (body: string) => {
  try {
    const message = (JSON.parse(body) as { message?: string }).message;
    return message ? `: ${message}` : '';
  } catch {
    return body ? `: ${body.slice(0, 80)}` : '';
  }
};

/** Milliseconds as seconds, to a tenth. */
const tenths = (ms: number) => Math.round(ms / 100) / 10;

/** How a kept-alive connection's close shows to a request sent on it ("socket hang up" is ECONNRESET too). */
const CLOSED_UNDER_REQUEST = new Set(['ECONNRESET', 'EPIPE']);

const bump = (counts: Record<string, number>, key: string) => (counts[key] = (counts[key] ?? 0) + 1);

export function startLoad(baseUrl: string, paths: string[], opts: LoadOptions = {}) {
  const { connections = 3, timeoutSeconds = 20, host, ca, pauseMs = 0 } = opts;
  const base = new URL(baseUrl);
  const tls = base.protocol === 'https:';
  const agent = tls ? new https.Agent({ keepAlive: true, maxSockets: connections, ca, servername: host }) : new http.Agent({ keepAlive: true, maxSockets: connections });
  // The retry's: a connection of its own each time.
  const fresh = tls ? new https.Agent({ keepAlive: false, ca, servername: host }) : new http.Agent({ keepAlive: false });
  const started = Date.now();
  const result: LoadResult = { requests: 0, ok: 0, failures: {}, failed: 0, firstFailures: [], resent: {}, startedAt: started, statusCodes: {}, releases: {}, seconds: 0 };
  let stopped = false;
  let next = 0;

  const once = () =>
    new Promise<void>((resolve) => {
      const urlPath = paths[next++ % paths.length];
      const sent = Date.now();
      const fail = (kind: string) => {
        result.requests++;
        result.failed++;
        bump(result.failures, kind);
        if (result.firstFailures.length < 500) result.firstFailures.push({ at: tenths(sent - started), took: tenths(Date.now() - sent), kind });
        resolve();
      };
      const send = (mayResend: boolean) => {
        let answered = false;
        const req = (tls ? https : http).request(
          { host: base.hostname, port: base.port, path: urlPath, agent: mayResend ? agent : fresh, headers: host ? { host } : {}, timeout: timeoutSeconds * 1000, ...(tls && host ? { servername: host } : {}) },
          (res) => {
            answered = true;
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (chunk) => (body += chunk));
            res.on('error', (err) => fail((err as NodeJS.ErrnoException).code ?? err.message));
            res.on('end', () => {
              const status = res.statusCode ?? 0;
              bump(result.statusCodes, String(status));
              // The app's own refusals say why ({message}); a proxy's 502 has no body.
              if (status < 200 || status >= 300) return fail(`status ${status}${messageOf(body)}`);
              if (urlPath === '/version') {
                const release = (JSON.parse(body) as { release: string }).release;
                bump(result.releases, release);
                if (opts.releases && !opts.releases().includes(release)) return fail(`release ${release} answered`);
              }
              result.requests++;
              result.ok++;
              resolve();
            });
          },
        );
        req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'timeout' })));
        req.on('error', (err) => {
          const code = (err as NodeJS.ErrnoException).code ?? err.message;
          if (mayResend && req.reusedSocket && !answered && CLOSED_UNDER_REQUEST.has(code)) {
            bump(result.resent, code);
            return send(false);
          }
          fail(code);
        });
        req.end();
      };
      send(true);
    });

  const clients = Array.from({ length: connections }, async () => {
    while (!stopped) {
      await once();
      if (pauseMs) await sleep(pauseMs);
    }
  });
  const handle = { stop: () => (stopped = true) };
  running.add(handle);

  return {
    get requests() {
      return result.requests;
    },
    /** Stops the load (requests in flight finish) and sums it up. */
    async stop(): Promise<LoadResult> {
      stopped = true;
      running.delete(handle);
      await Promise.all(clients);
      agent.destroy();
      fresh.destroy();
      result.seconds = tenths(Date.now() - started);
      return result;
    },
  };
}
