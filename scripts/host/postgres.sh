#!/usr/bin/env bash
# Host step (databaseMode onHost) (order: infra/host-steps.ts): Debian's PostgreSQL on localhost only, with a
# role and a database for the app. The password arrives on stdin, never in argv.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/postgres-lib.sh"
require DB_NAME DB_USER

IFS= read -r DB_PASSWORD || true
[[ "$DB_PASSWORD" =~ ^[A-Za-z0-9]{16,}$ ]] || fail "expected the database password (16+ letters and digits) on stdin"

# A register on a data volume (the data-volume step's binds in /etc/fstab) that is not mounted: this step would
# otherwise work on the root disk's empty directories, and make a new, empty cluster there.
for dir in /var/lib/postgresql /etc/postgresql; do
  if grep -qE "^[^#[:space:]]+[[:space:]]+${dir}[[:space:]]+none[[:space:]]+bind" /etc/fstab && ! mountpoint -q "$dir"; then
    fail "$dir is not mounted from the data volume (/etc/fstab binds it): nothing was changed. Is the volume attached? Then mount -a, or pulumi up --replace the data-volume step"
  fi
done

apt_install postgresql
# Debian's package makes the main cluster at its first install only (postgresql-common's maintscripts-functions,
# configure_version). A host that has the package and no cluster (a new data volume on a kept host, a host started
# from an image) gets it here, made as the package makes it. The data-volume step has mounted the volume by now.
if [ -z "$(pg_lsclusters --no-header 2>/dev/null)" ]; then
  version=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)
  [ -n "$version" ] || fail "the postgresql package is installed, but no server is under /usr/lib/postgresql"
  pg_createcluster -u postgres --quiet "$version" main
  log "made PostgreSQL $version's cluster main: the package was installed, and this host had no cluster (a new data volume?)"
fi
pg_cluster
write_file "$PG_CONF_DIR/cemetery-backend.conf" 0644 postgres:postgres <<'CONF'
# cemetery-backend: the app connects over loopback only
listen_addresses = 'localhost'
CONF
restart=$WROTE
# A postmaster that dies (kill -9, the OOM killer) is started again. Debian's postgresql@.service (postgresql-common
# 278, Debian 13) leaves Restart=on-failure commented out so that a `pg_ctlcluster stop` run outside systemd holds;
# every stop here (cemetery-db restore, reboots) goes through systemctl, which never restarts.
write_file /etc/systemd/system/postgresql@.service.d/cemetery-restart.conf 0644 root:root <<'UNIT'
[Service]
Restart=on-failure
RestartSec=2s
UNIT
[ "$WROTE" = 0 ] || systemctl daemon-reload
systemctl is-enabled --quiet postgresql || systemctl enable postgresql
# The cluster's own unit too: Debian's generator wants the clusters it finds in /etc/postgresql when systemd starts,
# before a data volume's /etc/postgresql is mounted (postgresql-common's postgresql-generator), so at boot it would
# find none. Enabled, the unit starts once its directories are mounted (its RequiresMountsFor). Only "enabled" will
# do: after a daemon-reload the generator's link makes it "enabled-runtime", which the next boot forgets.
[ "$(systemctl is-enabled "$PG_UNIT" 2>/dev/null || true)" = enabled ] || systemctl enable --quiet "$PG_UNIT"
if [ "$restart" = 1 ] || ! systemctl is-active --quiet "$PG_UNIT"; then systemctl restart "$PG_UNIT"; fi
pg_wait_ready 60 || fail "PostgreSQL does not accept connections on 127.0.0.1"
if [ -z "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER'")" ]; then
  # SQL through stdin: the password never shows in a process list.
  psql_admin <<<"CREATE ROLE \"$DB_USER\" LOGIN PASSWORD '$DB_PASSWORD';"
  log "created role $DB_USER"
fi
if [ -z "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" ]; then
  psql_admin -c "CREATE DATABASE \"$DB_NAME\" OWNER \"$DB_USER\""
  log "created database $DB_NAME"
fi
# Reset the password only when it no longer works (a changed secret).
passfile=$(mktemp)
chmod 600 "$passfile"
echo "127.0.0.1:5432:$DB_NAME:$DB_USER:$DB_PASSWORD" >"$passfile"
if ! PGPASSFILE="$passfile" psql -h 127.0.0.1 -U "$DB_USER" -d "$DB_NAME" -w -qAt -c 'SELECT 1' >/dev/null 2>&1; then
  psql_admin <<<"ALTER ROLE \"$DB_USER\" PASSWORD '$DB_PASSWORD';"
  log "set the password of $DB_USER"
fi
rm -f "$passfile"
log "PostgreSQL $(psql_admin -c 'SHOW server_version' | cut -d' ' -f1) on 127.0.0.1:5432, database $DB_NAME"
