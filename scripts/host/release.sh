#!/usr/bin/env bash
# Host step (order: infra/host-steps.ts): the release. Installs the release tool
# as /usr/local/sbin/cemetery-release (root's: outside the app user's home),
# then deploys the uploaded release with it: health-gated, saved for reboot,
# switched back on failure, old releases and uploads pruned (see release.cjs).
# The app's environment file arrives on stdin (it holds DATABASE_URL) and is
# passed through to the tool, never to a command line.
source "$(dirname "$0")/lib.sh"
require APP_USER APP_HOME APP_NAME APP_PORT RELEASE_ID UPLOAD_DIR KEEP_RELEASES HEALTH_TIMEOUT

write_file /usr/local/lib/cemetery-backend/release.cjs 0644 root:root <"$(dirname "$0")/release.cjs"
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
write_file /usr/local/sbin/cemetery-admin 0755 root:root <<WRAPPER
#!/bin/sh
# cemetery-backend admin commands of the live release (written by provisioning)
[ "\$(id -u)" = 0 ] || { echo "cemetery-admin: run it with sudo" >&2; exit 1; }
cd $APP_HOME/current || exit 1
exec sudo -u $APP_USER -H env CEMETERY_ENV_FILE=$APP_HOME/shared/app.env NODE_ENV=production /opt/node/bin/node dist/admin.js "\$@"
WRAPPER

cemetery-release deploy --id "$RELEASE_ID" --upload "$UPLOAD_DIR" || fail "release $RELEASE_ID was not deployed (see above)"
