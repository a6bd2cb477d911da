#!/usr/bin/env bash
# Host step (order: infra/host-steps.ts): pm2-logrotate in the app user's PM2, configured from the
# stack. The module comes from the lockfile in scripts/host/pm2-logrotate-module (npm ci
# --ignore-scripts as root into /opt/pm2-logrotate-<lock>), packed the way PM2 takes a module from
# a tarball: one folder named module, the package's own files with its dependencies under them
# (pm2 7.0.4 lib/API/Modules/TAR.js). `pm2 install <tarball>` unpacks it into ~/.pm2/modules and
# starts it, running no npm; a daemon restart starts it again (module_conf.json "tar-modules").
# `pm2 set` restarts the module with the new setting (PM2 passes a module its settings when it
# restarts it, lib/API.js).
source "$(dirname "$0")/lib.sh"
require APP_USER LOGROTATE_VERSION MAX_SIZE RETAIN COMPRESS ROTATE_INTERVAL

systemctl is-active --quiet "pm2-$APP_USER" || fail "pm2-$APP_USER.service is not running (the pm2 step comes first)"
home=$(getent passwd "$APP_USER" | cut -d: -f6)
# The helper goes in on stdin: the app user cannot read the SSH user's home, where the scripts are.
differing_settings() { as_user "$APP_USER" node - "$@" <"$(dirname "$0")/pm2-module-setting.cjs"; }

packages="$(dirname "$0")/pm2-logrotate-module"
lock=$(lock_id "$packages")
build="/opt/pm2-logrotate-$lock"
if [ ! -f "$build/pm2-logrotate.tar.gz" ]; then
  rm -rf "$build.partial"
  mkdir -p "$build.partial/module"
  npm_ci_locked "$packages" "$build.partial/npm" pm2-logrotate "$LOGROTATE_VERSION"
  modules="$build.partial/npm/node_modules"
  # Its dependencies move under it; one of its own nested there would be shadowed, so the lockfile must not have any.
  [ ! -e "$modules/pm2-logrotate/node_modules" ] || fail "the lockfile nests dependencies under pm2-logrotate itself: the module would lose them"
  cp -a "$modules/pm2-logrotate/." "$build.partial/module/"
  rm -rf "$modules/pm2-logrotate"
  mv "$modules" "$build.partial/module/node_modules"
  echo "$lock" >"$build.partial/module/.cemetery-lock"
  tar -czf "$build.partial/pm2-logrotate.tar.gz" -C "$build.partial" module
  rm -rf "$build.partial/npm" "$build.partial/module"
  chmod 0644 "$build.partial/pm2-logrotate.tar.gz"
  mv -T "$build.partial" "$build"
  log "built pm2-logrotate $LOGROTATE_VERSION from the lockfile in $build"
fi

# Read as the app user: its ~/.pm2 is not root's to trust (at worst a wrong answer reinstalls).
if [ "$(as_user "$APP_USER" cat "$home/.pm2/modules/pm2-logrotate/.cemetery-lock" 2>/dev/null || true)" != "$lock" ]; then
  # What was there goes first: a build of another lockfile, or the pm2-logrotate `pm2 install name@version` got from npm.
  as_user "$APP_USER" pm2 uninstall pm2-logrotate >/dev/null 2>&1 || true
  as_user "$APP_USER" pm2 install "$build/pm2-logrotate.tar.gz" >/dev/null
  log "installed pm2-logrotate $LOGROTATE_VERSION from the lockfile ($lock)"
fi
for old in /opt/pm2-logrotate-*; do
  [ "$old" != "$build" ] || continue
  rm -rf "$old"
  log "removed $old"
done

# Each pm2 call is seconds on a small host and restarts the module: the settings that differ go in
# one `pm2 multiset` (pm2 7.0.4 lib/API/Configuration.js: one restart, for the first key's module).
# It splits its argument on spaces and keeps quotes in values (lib/Configuration.js multiset), so a
# value with spaces (rotateInterval, a cron expression) goes through `pm2 set` on its own.
changed=()
differing=$(differing_settings pm2-logrotate "max_size=$MAX_SIZE" "retain=$RETAIN" "compress=$COMPRESS" "rotateInterval=$ROTATE_INTERVAL")
while IFS= read -r pair; do
  [ -n "$pair" ] || continue
  key=${pair%%=*}
  value=${pair#*=}
  if [[ "$value" == *" "* ]]; then
    as_user "$APP_USER" pm2 set "pm2-logrotate:$key" "$value" </dev/null >/dev/null
  else
    changed+=("pm2-logrotate:$key $value")
  fi
  log "pm2-logrotate:$key = $value"
done <<<"$differing"
[ ${#changed[@]} -eq 0 ] || as_user "$APP_USER" pm2 multiset "${changed[*]}" >/dev/null
log "pm2-logrotate $LOGROTATE_VERSION: max_size $MAX_SIZE, retain $RETAIN, compress $COMPRESS, rotateInterval '$ROTATE_INTERVAL'"
