#!/usr/bin/env bash
# Host step (order: infra/host-steps.ts): the unprivileged user that owns PM2 and the app, and its directories.
source "$(dirname "$0")/lib.sh"
require APP_USER APP_HOME

if ! id "$APP_USER" >/dev/null 2>&1; then
  useradd --system --user-group --home-dir "$APP_HOME" --create-home --shell /bin/bash "$APP_USER"
  log "created user $APP_USER"
fi
for dir in "$APP_HOME" "$APP_HOME/releases" "$APP_HOME/shared" "$APP_HOME/logs"; do
  install -d -m 0750 -o "$APP_USER" -g "$APP_USER" "$dir"
done
log "$APP_USER owns $APP_HOME/{releases,shared,logs}"
