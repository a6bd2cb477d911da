/**
 * Load through a URL while something else happens (a deploy, a rollback, a
 * killed worker): autocannon runs until stopped, and at least `minRequests`
 * are sent before it stops.
 */
import autocannon from 'autocannon';
import { waitUntil } from '../../scripts/lib/wait.cjs';

export type LoadResult = {
  requests: number;
  ok: number;
  /** Connection errors (timeouts included, as autocannon counts them) and non-2xx answers. */
  failed: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  /** Answers by status code. */
  statusCodes: Record<string, number>;
  seconds: number;
};

/** Loads not stopped yet: a test that fails mid-way must not leave one hammering the host for the tests after it. */
const running = new Set<{ abort: () => void }>();
export function stopAllLoads() {
  for (const load of running) load.abort();
  running.clear();
}

/** Through the proxy: the site's name, as the TLS name (SNI) and the Host header; seconds before a request counts as timed out (default 10). */
export type LoadTarget = { servername?: string; host?: string; timeoutSeconds?: number };

export function startLoad(url: string, connections = 8, target: LoadTarget = {}) {
  const started = Date.now();
  let sent = 0;
  let finish: (r: autocannon.Result) => void = () => {};
  const done = new Promise<autocannon.Result>((resolve) => (finish = resolve));
  // With a callback autocannon returns its instance (to count and to stop).
  // autocannon does not verify certificates (the VM tier checks the proxy's with its CA elsewhere).
  const headers = target.host ? { host: target.host } : undefined;
  const instance = autocannon({ url, connections, duration: 3600, timeout: target.timeoutSeconds ?? 10, servername: target.servername, headers }, (err, result) => {
    if (err) throw err;
    finish(result);
  });
  instance.on('response', () => sent++);
  const handle = { abort: () => instance.stop() };
  running.add(handle);
  return {
    get sent() {
      return sent;
    },
    /** Keeps the load on until `minRequests` answers came, then stops and sums up. */
    async stop(minRequests = 0): Promise<LoadResult> {
      await waitUntil(`${minRequests} requests`, () => sent >= minRequests, { timeoutMs: 10 * 60 * 1000, intervalMs: 200 });
      instance.stop();
      running.delete(handle);
      const r = await done;
      return {
        requests: r.requests.total,
        ok: r['2xx'],
        failed: r.errors + r.non2xx,
        errors: r.errors,
        timeouts: r.timeouts,
        non2xx: r.non2xx,
        statusCodes: Object.fromEntries(Object.entries((r as unknown as { statusCodeStats?: Record<string, { count: number }> }).statusCodeStats ?? {}).map(([code, v]) => [code, v.count])),
        seconds: Math.round((Date.now() - started) / 100) / 10,
      };
    },
  };
}
