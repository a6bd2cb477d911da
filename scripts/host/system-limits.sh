#!/usr/bin/env bash
# Host step (order: infra/host-steps.ts): the open-files limit for the app user, in a login shell (limits.d)
# and for the PM2 service (systemd ignores limits.conf: a drop-in sets LimitNOFILE).
source "$(dirname "$0")/lib.sh"
require APP_USER NOFILE

write_file "/etc/security/limits.d/90-cemetery-backend.conf" 0644 root:root <<CONF
# cemetery-backend: open files for the PM2 user (written by provisioning)
$APP_USER soft nofile $NOFILE
$APP_USER hard nofile $NOFILE
CONF

# Debian's su leaves pam_limits commented out; login shells via su must see the limit too.
if grep -Eq '^#\s*session\s+required\s+pam_limits\.so' /etc/pam.d/su; then
  sed -i -E 's/^#\s*(session\s+required\s+pam_limits\.so)/\1/' /etc/pam.d/su
  log "enabled pam_limits for su"
fi

write_file "/etc/systemd/system/pm2-$APP_USER.service.d/10-nofile.conf" 0644 root:root <<CONF
# cemetery-backend: the PM2 daemon and its workers get the same limit as a login shell
[Service]
LimitNOFILE=$NOFILE
CONF
if [ "$WROTE" = 1 ]; then
  systemctl daemon-reload
  # A changed limit reaches a running daemon only through a restart.
  if systemctl is-active --quiet "pm2-$APP_USER"; then
    log "restarting pm2-$APP_USER for the new limit"
    systemctl restart "pm2-$APP_USER"
  fi
fi
log "nofile $NOFILE for $APP_USER"
