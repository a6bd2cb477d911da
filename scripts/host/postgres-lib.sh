# shellcheck shell=bash
# shellcheck disable=SC2034 # PG_* are read by the scripts that source this
# Debian's PostgreSQL cluster and how to reach it as its superuser: sourced by the on-host database steps
# (postgres.sh, backups.sh) after lib.sh, and built into cemetery-db (backups.sh), which defines its own fail.

# pg_cluster: PG_VERSION, PG_NAME, PG_DATA, PG_CONF_DIR and PG_UNIT of the host's cluster (the newest, as pg_lsclusters lists them).
pg_cluster() {
  local line
  line=$(pg_lsclusters --no-header 2>/dev/null | sort -V | tail -n 1)
  [ -n "$line" ] || fail "no PostgreSQL cluster found (pg_lsclusters lists none)"
  read -r PG_VERSION PG_NAME _ _ _ PG_DATA _ <<<"$line"
  PG_CONF_DIR=/etc/postgresql/$PG_VERSION/$PG_NAME/conf.d
  PG_UNIT=postgresql@$PG_VERSION-$PG_NAME
}

# Left by cemetery-archive-get when the archive could not be read during a restore's recovery (see cemetery-db).
ARCHIVE_UNREADABLE_MARK=/run/postgresql/cemetery-archive-unreadable

# psql as postgres, from / (the caller's directory may be closed to postgres); SQL on stdin keeps secrets out of argv.
psql_admin() { (cd / && sudo -u postgres psql -v ON_ERROR_STOP=1 -qAt "$@"); }

# pgBackRest as postgres for the register's stanza ($STANZA), from / like psql_admin.
pgbackrest_as_postgres() { (cd / && sudo -u postgres pgbackrest --stanza="$STANZA" "$@"); }

# pg_wait_ready [SECONDS]: until the server accepts connections on 127.0.0.1 (60 s unless told).
pg_wait_ready() {
  local _
  for _ in $(seq 1 "${1:-60}"); do
    pg_isready -q -h 127.0.0.1 && return 0
    sleep 1
  done
  return 1
}
