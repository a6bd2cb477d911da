// Which of a PM2 module's settings differ from the wanted ones, as `pm2 set`
// stored them in module_conf.json: prints each wanted `key=value` whose stored
// value differs (or is unset), one per line. For the pm2-logrotate step, which
// sets only what differs (`pm2 set` restarts the module); one node start for
// all keys (each is about a second on a small host). Run as the app user, the
// program on stdin:
//   node - <module> <key>=<value>... < pm2-module-setting.cjs
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const [name, ...wanted] = process.argv.slice(2);
if (!name || wanted.length === 0 || wanted.some((pair) => !/^[A-Za-z_][A-Za-z0-9_]*=/.test(pair))) {
  process.stderr.write('usage: node - <module> <key>=<value>... < pm2-module-setting.cjs\n');
  process.exit(2);
}
let conf = {};
try {
  conf = JSON.parse(fs.readFileSync(path.join(process.env.PM2_HOME || path.join(os.homedir(), '.pm2'), 'module_conf.json'), 'utf8'))[name] || {};
} catch {
  // no settings yet
}
for (const pair of wanted) {
  const key = pair.slice(0, pair.indexOf('='));
  const value = pair.slice(key.length + 1);
  if (conf[key] === undefined || String(conf[key]) !== value) process.stdout.write(`${pair}\n`);
}
