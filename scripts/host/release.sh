#!/usr/bin/env bash
# Host step (order: infra/host-steps.ts): the release. Installs the operator's
# host commands (root's, outside the app user's home):
#   cemetery-release      list, rollback: the release tool (release.cjs)
#   cemetery-admin        the live release's admin commands (API tokens)
#   cemetery-maintenance  on|off|status: the proxy's maintenance switch
#   cemetery-audit        the audit trail they all append to (--show to read it)
# then deploys the uploaded release with the tool: health-gated, saved for
# reboot, switched back on failure, old releases and uploads pruned, each phase
# printed as it happens (the step's output is shown: nothing here prints a secret).
# The app's environment file arrives on stdin (it holds DATABASE_URL) and is
# passed through to the tool, never to a command line.
source "$(dirname "$0")/lib.sh"
require APP_USER APP_HOME APP_NAME APP_PORT RELEASE_ID UPLOAD_DIR KEEP_RELEASES HEALTH_TIMEOUT AUDIT_LOG MAINTENANCE_FLAG
here=$(dirname "$0")

# Who did what: sshd exposes the key a session logged in with (SSH_USER_AUTH), sudo keeps it for
# cemetery-audit. Validated before either replaces anything; sessions open now keep their settings.
validated() { # validated CHECK... < content: the content, if CHECK accepts it as a file
  local tmp
  tmp=$(mktemp)
  cat >"$tmp"
  "$@" "$tmp" >/dev/null || { rm -f "$tmp"; fail "$* refused the file it was given"; }
  cat "$tmp"
  rm -f "$tmp"
}
sudoers=$(validated visudo -cf <<<'Defaults env_keep += "SSH_USER_AUTH SSH_CONNECTION"')
write_file /etc/sudoers.d/cemetery-audit 0440 root:root <<<"$sudoers"
# sshd reads its drop-ins at every start: one it refuses would lock everyone out after the next reboot, so
# the drop-in is checked alone, then with the whole configuration, and taken out again if that fails.
# (Assigned first, like sudoers: a refusal inside a here-string's substitution would not stop the script.)
sshd_drop_in=/etc/ssh/sshd_config.d/50-cemetery-audit.conf
sshd_setting=$(validated sshd -t -f <<<'ExposeAuthInfo yes')
write_file "$sshd_drop_in" 0644 root:root <<<"$sshd_setting"
if [ "$WROTE" = 1 ]; then
  sshd -t || { rm -f "$sshd_drop_in"; fail "sshd refuses its configuration with $sshd_drop_in, so it was taken out again"; }
  # A running sshd re-reads its files (new sessions get the setting); a socket-activated one reads them per connection.
  systemctl try-reload-or-restart ssh
fi
# The commands' own text, after the line that sets where they keep their state (HOST_PATHS).
write_file /usr/local/sbin/cemetery-audit 0755 root:root <<<"$(printf '#!/bin/bash\nAUDIT_LOG=%s\n' "$AUDIT_LOG"; cat "$here/cemetery-audit.sh")"
write_file /usr/local/sbin/cemetery-maintenance 0755 root:root <<<"$(printf '#!/bin/bash\nMAINTENANCE_FLAG=%s\n' "$MAINTENANCE_FLAG"; cat "$here/cemetery-maintenance.sh")"

write_file /usr/local/lib/cemetery-backend/release.cjs 0644 root:root <"$here/release.cjs"
# One release command at a time (a rollback by hand while Pulumi deploys waits for it).
write_file /usr/local/sbin/cemetery-release 0755 root:root <<WRAPPER
#!/bin/sh
# cemetery-backend releases: list, rollback [<id>] (written by provisioning)
[ "\$(id -u)" = 0 ] || { echo "cemetery-release: run it with sudo" >&2; exit 1; }
exec flock -w 900 /run/cemetery-release.lock /opt/node/bin/node /usr/local/lib/cemetery-backend/release.cjs \\
  --app-user $APP_USER --app-home $APP_HOME --app-name $APP_NAME --app-port $APP_PORT \\
  --uploads $(dirname "$UPLOAD_DIR") --keep $KEEP_RELEASES --timeout $HEALTH_TIMEOUT "\$@"
WRAPPER

# The app's own admin commands (API tokens), as the app user with the live
# release and its env file: `sudo cemetery-admin token create --name office`.
# A token made or revoked goes on the audit trail (its arguments, never the token).
write_file /usr/local/sbin/cemetery-admin 0755 root:root <<WRAPPER
#!/bin/sh
# cemetery-backend admin commands of the live release (written by provisioning)
[ "\$(id -u)" = 0 ] || { echo "cemetery-admin: run it with sudo" >&2; exit 1; }
cd $APP_HOME/current || exit 1
sudo -u $APP_USER -H env CEMETERY_ENV_FILE=$APP_HOME/shared/app.env NODE_ENV=production /opt/node/bin/node dist/admin.js "\$@"
status=\$?
case "\$1 \$2" in
  "token create" | "token revoke") cemetery-audit "token-\$2" "\$([ \$status = 0 ] && echo ok || echo failed)" "\$*" ;;
esac
exit \$status
WRAPPER

# With on-host backups (the backups step installed cemetery-db): a restore point before the release may migrate.
if [ -x /usr/local/sbin/cemetery-db ]; then
  cemetery-db mark "before-$RELEASE_ID" || fail "no restore point could be recorded before release $RELEASE_ID, so it was not deployed (see above)"
fi
cemetery-release deploy --id "$RELEASE_ID" --upload "$UPLOAD_DIR" || fail "release $RELEASE_ID was not deployed (see above)"
