// PM2 process file for cemetery-backend: the seed guide's table, plus what a
// zero-downtime reload needs. Read by `pm2 start|reload` locally (npm run pm2:*)
// and on the host, where it ships inside every release next to dist/.
// Tunables come from the environment, so the Pulumi stack config reaches PM2
// without a second copy of this file.
const fs = require('node:fs');
const path = require('node:path');
const { parseEnv } = require('node:util');

// On a host this file is loaded as <appHome>/current/ecosystem.config.js, and
// Node gives it its real path, <appHome>/releases/<id>/. PM2 keeps `cwd` and
// `script` from the first start and every reload runs them again: they name
// `current`, so a reload after `current` moves runs the new release's code.
const appHome = path.basename(path.dirname(__dirname)) === 'releases' ? path.resolve(__dirname, '..', '..') : undefined;

// On the host the app's environment (DATABASE_URL and the PM2 tunables) lives
// in one file, shared/app.env (root's, 0640: the app user reads it; CEMETERY_ENV_FILE names another). This file
// reads only the PM2 tunables from it and passes the app the file's path: the
// app reads the file itself, so no secret enters PM2's process list or
// dump.pm2. Variables set in the calling shell win over the file.
const envFile = process.env.CEMETERY_ENV_FILE || (appHome && path.join(appHome, 'shared', 'app.env'));
const fileEnv = envFile ? parseEnv(fs.readFileSync(envFile, 'utf8')) : {};
const settings = { ...fileEnv, ...process.env };

// `pm2 start ecosystem.config.js --env production` (the seed's command) sets no
// NODE_ENV in the CLI that evaluates this file, so look at its arguments too.
const argv = process.argv.join(' ');
const production = settings.NODE_ENV === 'production' || / --env[ =]production\b/.test(argv);

/** Milliseconds PM2 waits after SIGINT before SIGKILL; the app's own deadline is kept below it. */
const KILL_TIMEOUT_MS = 8000;

function instancesFrom(env) {
  const raw = env.PM2_INSTANCES;
  if (raw === undefined || raw === '') return production ? 'max' : 2;
  if (raw === 'max') return 'max';
  if (/^[1-9]\d{0,2}$/.test(raw)) return Number(raw);
  throw new Error(`PM2_INSTANCES must be "max" or a whole number from 1 to 999, got "${raw}"`);
}

/**
 * How long PM2 waits for a new worker's `ready` in a reload before it retires
 * the old worker anyway (lib/God/Reload.js hardReload: the listen_timeout timer
 * deletes the old worker whether or not the new one is up). Shorter than a
 * worker's boot, that is a gap with no worker listening: a slow host answered
 * 502 for 15 s that way. Provisioning sets it to the release's health timeout.
 */
function listenTimeoutFrom(env) {
  const raw = env.PM2_LISTEN_TIMEOUT_MS;
  if (raw === undefined || raw === '') return 10000;
  if (/^\d+$/.test(raw) && Number(raw) >= 1000 && Number(raw) <= 600000) return Number(raw);
  throw new Error(`PM2_LISTEN_TIMEOUT_MS must be milliseconds from 1000 to 600000, got "${raw}"`);
}

function memoryLimitFrom(env) {
  const raw = env.PM2_MAX_MEMORY_RESTART || '1G';
  if (/^[1-9]\d*[KMG]$/.test(raw)) return raw;
  throw new Error(`PM2_MAX_MEMORY_RESTART must be a size like 512M or 1G, got "${raw}"`);
}

/** What every worker gets, whatever the --env: the env file's path, never its contents. */
const appEnv = { SHUTDOWN_TIMEOUT_MS: String(KILL_TIMEOUT_MS - 1500), ...(envFile ? { CEMETERY_ENV_FILE: envFile } : {}) };

const logDir = settings.LOG_DIR || path.join(appHome || path.resolve(__dirname, '..'), 'logs');

module.exports = {
  apps: [
    {
      name: 'cemetery-backend',
      cwd: appHome ? path.join(appHome, 'current') : __dirname,
      script: 'dist/server.js',
      exec_mode: 'cluster',
      instances: instancesFrom(settings),
      max_memory_restart: memoryLimitFrom(settings),
      autorestart: true,
      watch: false,

      // Zero downtime: a new worker gets traffic only after process.send('ready'),
      // and the old one is retired only then (or after listen_timeout); it drains and exits before SIGKILL.
      wait_ready: true,
      listen_timeout: listenTimeoutFrom(settings),
      kill_timeout: KILL_TIMEOUT_MS,
      // Crash loops back off (100 ms doubling to 15 s) instead of hammering the database.
      exp_backoff_restart_delay: 100,
      // Exit 78 is a configuration error: restarting cannot fix it.
      stop_exit_codes: [78],

      error_file: path.join(logDir, 'err.log'),
      out_file: path.join(logDir, 'out.log'),
      merge_logs: true,
      // No log_date_format: out.log is the app's JSON lines as written, each with its own time (pino's).

      env: { ...appEnv, NODE_ENV: 'development' },
      env_production: { ...appEnv, NODE_ENV: 'production' },
    },
  ],
};
