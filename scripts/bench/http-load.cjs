// A dependency-free load loop for measuring on a host (the VM tier runs it on
// the VM, with the host's Node.js): CONNECTIONS keep-alive clients GET one URL
// for SECONDS, and it prints one JSON line {requests, ok, failed, rps}. The
// same client measures the app directly and through the proxy, so the ratio
// of the two is the proxy's cost.
//   node http-load.cjs <url> [--host <Host header and TLS name>] [--ca <file>] [--connections 16] [--seconds 10]
const fs = require('node:fs');
const http = require('node:http');
const https = require('node:https');

const args = process.argv.slice(2);
const url = new URL(args[0] ?? '');
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? fallback : args[i + 1];
};
const hostName = option('host', url.hostname);
const connections = Number(option('connections', 16));
const seconds = Number(option('seconds', 10));
const ca = option('ca');

const tls = url.protocol === 'https:';
// Certificates are verified: a proxy serving the wrong one fails every request.
const agent = tls
  ? new https.Agent({ keepAlive: true, maxSockets: connections, ca: ca ? fs.readFileSync(ca) : undefined, servername: hostName })
  : new http.Agent({ keepAlive: true, maxSockets: connections });
const get = tls ? https.get : http.get;

const counts = { requests: 0, ok: 0, failed: 0 };
const errors = {};
const deadline = Date.now() + seconds * 1000;

function once() {
  return new Promise((resolve) => {
    const req = get(url, { agent, headers: { host: hostName }, timeout: 10000 }, (res) => {
      res.resume();
      res.on('end', () => {
        counts.requests++;
        if (res.statusCode >= 200 && res.statusCode < 300) counts.ok++;
        else {
          counts.failed++;
          errors[res.statusCode] = (errors[res.statusCode] ?? 0) + 1;
        }
        resolve();
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => {
      counts.requests++;
      counts.failed++;
      errors[err.code ?? err.message] = (errors[err.code ?? err.message] ?? 0) + 1;
      resolve();
    });
  });
}

async function client() {
  while (Date.now() < deadline) await once();
}

const started = Date.now();
Promise.all(Array.from({ length: connections }, client)).then(() => {
  const elapsed = (Date.now() - started) / 1000;
  console.log(JSON.stringify({ ...counts, errors, rps: Math.round(counts.requests / elapsed), seconds: Math.round(elapsed * 10) / 10 }));
  agent.destroy();
});
