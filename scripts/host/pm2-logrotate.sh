#!/usr/bin/env bash
# Host step (order: infra/host-steps.ts): pm2-logrotate in the app user's PM2, configured from the stack. After
# an install or a changed setting the module is restarted so that it reads its
# settings again (see pm2-module.cjs: `pm2 set` alone does not reach it).
source "$(dirname "$0")/lib.sh"
require APP_USER LOGROTATE_VERSION MAX_SIZE RETAIN COMPRESS ROTATE_INTERVAL

systemctl is-active --quiet "pm2-$APP_USER" || fail "pm2-$APP_USER.service is not running (the pm2 step comes first)"
home=$(getent passwd "$APP_USER" | cut -d: -f6)
module() { as_user "$APP_USER" node "$(dirname "$0")/pm2-module.cjs" "$@"; }

changed=0
installed=$(/opt/node/bin/node -p "require('$home/.pm2/modules/pm2-logrotate/node_modules/pm2-logrotate/package.json').version" 2>/dev/null || true)
if [ "$installed" != "$LOGROTATE_VERSION" ]; then
  as_user "$APP_USER" pm2 install "pm2-logrotate@$LOGROTATE_VERSION" >/dev/null
  log "installed pm2-logrotate $LOGROTATE_VERSION"
  changed=1
fi

for pair in "max_size=$MAX_SIZE" "retain=$RETAIN" "compress=$COMPRESS" "rotateInterval=$ROTATE_INTERVAL"; do
  key=${pair%%=*}
  value=${pair#*=}
  if [ "$(module setting pm2-logrotate "$key")" != "$value" ]; then
    as_user "$APP_USER" pm2 set "pm2-logrotate:$key" "$value" >/dev/null
    log "pm2-logrotate:$key = $value"
    changed=1
  fi
done
if [ "$changed" = 1 ]; then
  module restart pm2-logrotate >/dev/null
  log "restarted pm2-logrotate with its settings"
fi
log "pm2-logrotate $LOGROTATE_VERSION: max_size $MAX_SIZE, retain $RETAIN, compress $COMPRESS, rotateInterval '$ROTATE_INTERVAL'"
