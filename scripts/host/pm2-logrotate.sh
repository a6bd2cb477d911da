#!/usr/bin/env bash
# Host step (order: infra/host-steps.ts): pm2-logrotate in the app user's PM2,
# configured from the stack. `pm2 set` restarts the module with the new setting
# (PM2 passes a module its settings when it restarts it, lib/API.js).
source "$(dirname "$0")/lib.sh"
require APP_USER LOGROTATE_VERSION MAX_SIZE RETAIN COMPRESS ROTATE_INTERVAL

systemctl is-active --quiet "pm2-$APP_USER" || fail "pm2-$APP_USER.service is not running (the pm2 step comes first)"
home=$(getent passwd "$APP_USER" | cut -d: -f6)
# The helper goes in on stdin: the app user cannot read the SSH user's home, where the scripts are.
setting() { as_user "$APP_USER" node - "$@" <"$(dirname "$0")/pm2-module-setting.cjs"; }

# Read as the app user: its ~/.pm2 is not root's to trust.
installed=$(as_user "$APP_USER" node -p "require('$home/.pm2/modules/pm2-logrotate/node_modules/pm2-logrotate/package.json').version" 2>/dev/null || true)
if [ "$installed" != "$LOGROTATE_VERSION" ]; then
  as_user "$APP_USER" pm2 install "pm2-logrotate@$LOGROTATE_VERSION" >/dev/null
  log "installed pm2-logrotate $LOGROTATE_VERSION"
fi

# Each pm2 call is seconds on a small host and restarts the module: the settings that differ go in
# one `pm2 multiset` (pm2 7.0.4 lib/API/Configuration.js: one restart, for the first key's module).
# It splits its argument on spaces and keeps quotes in values (lib/Configuration.js multiset), so a
# value with spaces (rotateInterval, a cron expression) goes through `pm2 set` on its own.
changed=()
for pair in "max_size=$MAX_SIZE" "retain=$RETAIN" "compress=$COMPRESS" "rotateInterval=$ROTATE_INTERVAL"; do
  key=${pair%%=*}
  value=${pair#*=}
  [ "$(setting pm2-logrotate "$key")" = "$value" ] && continue
  if [[ "$value" == *" "* ]]; then
    as_user "$APP_USER" pm2 set "pm2-logrotate:$key" "$value" >/dev/null
  else
    changed+=("pm2-logrotate:$key $value")
  fi
  log "pm2-logrotate:$key = $value"
done
[ ${#changed[@]} -eq 0 ] || as_user "$APP_USER" pm2 multiset "${changed[*]}" >/dev/null
log "pm2-logrotate $LOGROTATE_VERSION: max_size $MAX_SIZE, retain $RETAIN, compress $COMPRESS, rotateInterval '$ROTATE_INTERVAL'"
