#!/usr/bin/env bash
# Step 8: the uploaded release in place, its environment file (0600, from
# stdin: it holds DATABASE_URL), migrations, and the app running under PM2.
# (Minimal: switching between releases with health gates is a later step.)
source "$(dirname "$0")/lib.sh"
require APP_USER APP_HOME RELEASE_ID UPLOAD_DIR APP_PORT

env_file="$APP_HOME/shared/app.env"
write_file "$env_file" 0600 "$APP_USER:$APP_USER"
grep -q '^DATABASE_URL=' "$env_file" || fail "the environment on stdin has no DATABASE_URL"

release="$APP_HOME/releases/$RELEASE_ID"
if [ ! -d "$release" ]; then
  if [ ! -f "$UPLOAD_DIR/ecosystem.config.js" ] || [ ! -f "$UPLOAD_DIR/dist/server.js" ]; then fail "the upload in $UPLOAD_DIR is not a release (no ecosystem.config.js or dist/server.js)"; fi
  rm -rf "$release.partial"
  cp -a "$UPLOAD_DIR" "$release.partial"
  chown -R "$APP_USER:$APP_USER" "$release.partial"
  mv -T "$release.partial" "$release"
  log "release $RELEASE_ID in $release"
fi

# shellcheck disable=SC2016 # expanded by the inner shell
as_user "$APP_USER" bash -c 'set -a; . "$1"; set +a; node "$2/dist/migrate.js"' _ "$env_file" "$release" >/dev/null \
  || fail "migrations of release $RELEASE_ID failed"
link "$release" "$APP_HOME/current"

running=$(pm2_apps "$APP_USER" | /opt/node/bin/node -e '
  const apps = JSON.parse(require("fs").readFileSync(0, "utf8")).filter((p) => p.name === "cemetery-backend");
  process.stdout.write(apps.length ? String((apps[0].pm2_env.env || {}).RELEASE_ID || apps[0].pm2_env.RELEASE_ID || "?") : "");')
pm2_app() { as_user "$APP_USER" env CEMETERY_ENV_FILE="$env_file" NODE_ENV=production pm2 "$@" "$APP_HOME/current/ecosystem.config.js" --env production >/dev/null; }
if [ -z "$running" ]; then
  pm2_app start
  log "started cemetery-backend ($RELEASE_ID)"
elif [ "$running" != "$RELEASE_ID" ]; then
  pm2_app startOrReload --update-env
  log "reloaded cemetery-backend: $running -> $RELEASE_ID"
fi

for _ in $(seq 1 60); do
  curl -fsS -o /dev/null "http://127.0.0.1:$APP_PORT/readyz" && break
  sleep 1
done
curl -fsS -o /dev/null "http://127.0.0.1:$APP_PORT/readyz" || fail "the app does not answer /readyz on port $APP_PORT (pm2 logs cemetery-backend)"
log "cemetery-backend $RELEASE_ID ready on port $APP_PORT"
