// Runs the project's pinned PM2 CLI (node_modules), never a global one.
// CommonJS so that both the .mjs scripts and the jest tests can load it.
const { execFile, spawnSync } = require('node:child_process');

const PM2_BIN = require.resolve('pm2/bin/pm2');

/** Runs `pm2 ...args`; returns stdout. Throws with PM2's output when it fails, unless allowFailure. */
function pm2(args, { env = process.env, allowFailure = false, inherit = false } = {}) {
  const result = spawnSync(process.execPath, [PM2_BIN, ...args], {
    env,
    encoding: 'utf8',
    stdio: inherit ? 'inherit' : 'pipe',
  });
  if (result.status !== 0 && !allowFailure) {
    throw new Error(`pm2 ${args.join(' ')} failed (exit ${result.status}):\n${result.stdout ?? ''}${result.stderr ?? ''}`);
  }
  return result.stdout ?? '';
}

/** Like pm2(), without blocking the event loop (for callers that serve or load-test meanwhile). */
function pm2Async(args, { env = process.env } = {}) {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [PM2_BIN, ...args], { env, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`pm2 ${args.join(' ')} failed (exit ${err.code}):\n${stdout}${stderr}`));
      else resolve(stdout);
    });
  });
}

// One parser for `pm2 jlist`, bundled into the release tool too.
const { parseJlist } = require('./pm2-list.cjs');

/** The process list as PM2 reports it (`pm2 jlist`). */
function pm2List(env = process.env) {
  return parseJlist(pm2(['jlist'], { env }));
}

module.exports = { PM2_BIN, pm2, pm2Async, pm2List, parseJlist };
