#!/usr/bin/env node
// PM2 modules of the app user, for the pm2-logrotate step (run as that user):
//   node pm2-module.cjs setting <module> <key>   the module's setting, as `pm2 set` stored it ('' if unset)
//   node pm2-module.cjs restart <module>         restart it so that it reads its settings again
// Why restart this way: PM2 hands a module its settings in its environment when
// it starts the module (lib/API/Modules/NPM.js getModuleConf); `pm2 set` and
// `pm2 restart` keep the environment the module started with, so a changed
// setting (e.g. compress) would never take effect. Deleting the module's
// process and launching the installed modules again (PM2's own launchModules,
// as at daemon start) starts it with the settings of module_conf.json.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const [command, name, key] = process.argv.slice(2);
const home = process.env.PM2_HOME || path.join(os.homedir(), '.pm2');

function setting() {
  let conf = {};
  try {
    conf = JSON.parse(fs.readFileSync(path.join(home, 'module_conf.json'), 'utf8'))[name] || {};
  } catch {
    // no settings yet
  }
  process.stdout.write(conf[key] === undefined ? '' : String(conf[key]));
}

function restart() {
  const pm2 = require('/opt/node/lib/node_modules/pm2');
  const done = (err) => {
    pm2.disconnect();
    if (err) {
      process.stderr.write(`restarting the PM2 module ${name} failed: ${err.message || err}\n`);
      process.exit(1);
    }
  };
  pm2.connect((err) => {
    if (err) return done(err);
    pm2.delete(name, (delErr) => {
      if (delErr) return done(delErr);
      pm2.launchModules(done);
    });
  });
}

if (command === 'setting' && name && key) setting();
else if (command === 'restart' && name) restart();
else {
  process.stderr.write('usage: pm2-module.cjs setting <module> <key> | restart <module>\n');
  process.exit(2);
}
