#!/usr/bin/env bash
# Step 9: `pm2 save`, so pm2-<user>.service resurrects the process list at boot.
source "$(dirname "$0")/lib.sh"
require APP_USER

systemctl is-enabled --quiet "pm2-$APP_USER" || fail "pm2-$APP_USER.service is not enabled (the pm2 step comes first)"
as_user "$APP_USER" pm2 save --force >/dev/null
log "saved $(as_user "$APP_USER" pm2 jlist | /opt/node/bin/node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>process.stdout.write(String(JSON.parse(s.slice(s.indexOf("["))).length)))') processes for pm2-$APP_USER.service"
