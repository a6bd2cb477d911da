#!/usr/bin/env bash
# Step 9: `pm2 save`, so pm2-<user>.service resurrects the process list at boot.
source "$(dirname "$0")/lib.sh"
require APP_USER

systemctl is-enabled --quiet "pm2-$APP_USER" || fail "pm2-$APP_USER.service is not enabled (the pm2 step comes first)"
as_user "$APP_USER" pm2 save --force >/dev/null
count=$(pm2_apps "$APP_USER" | /opt/node/bin/node -e 'process.stdout.write(String(JSON.parse(require("fs").readFileSync(0, "utf8")).length))')
log "saved $count processes for pm2-$APP_USER.service"
