#!/usr/bin/env node
// `npm run token -- create --name me` (list, revoke, --help): the release's admin command
// (app/dist/admin.js) against the local database `npm run pm2:start` made, or DATABASE_URL.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { LOCAL_DB, localDatabaseUrl } from './lib/local-db.mjs';

const root = fileURLToPath(new URL('../', import.meta.url));
const admin = path.join(root, 'app', 'dist', 'admin.js');
const args = process.argv.slice(2);
const wantsHelp = args.length === 0 || args.some((a) => ['--help', '-h', 'help'].includes(a));

function fail(message) {
  console.error(`npm run token: ${message}`);
  process.exit(1);
}

if (!existsSync(admin)) fail('app/dist/admin.js is missing: run `npm run build` (or `npm run pm2:start`) first');
const databaseUrl = process.env.DATABASE_URL || localDatabaseUrl();
if (!databaseUrl && !wantsHelp) {
  fail(`no database: start the local one with \`npm run pm2:start\` (its password file ${path.join(LOCAL_DB.stateDir, 'postgres-password')} is missing), or set DATABASE_URL`);
}
// The URL holds a password: it travels in the environment, never in argv.
const env = { ...process.env, ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}) };
const result = spawnSync(process.execPath, [admin, 'token', ...(args.length ? args : ['--help'])], { env, stdio: 'inherit' });
process.exit(result.status ?? 1);
