// A PM2 module's setting as `pm2 set` stored it in module_conf.json ('' if
// unset), for the pm2-logrotate step, which sets only what differs (`pm2 set`
// restarts the module). Run as the app user, the program on stdin:
//   node - <module> <key> < pm2-module-setting.cjs
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const [name, key] = process.argv.slice(2);
if (!name || !key) {
  process.stderr.write('usage: node - <module> <key> < pm2-module-setting.cjs\n');
  process.exit(2);
}
let conf = {};
try {
  conf = JSON.parse(fs.readFileSync(path.join(process.env.PM2_HOME || path.join(os.homedir(), '.pm2'), 'module_conf.json'), 'utf8'))[name] || {};
} catch {
  // no settings yet
}
process.stdout.write(conf[key] === undefined ? '' : String(conf[key]));
