# shellcheck shell=bash
# shellcheck disable=SC2154 # STANZA, DB_NAME, AUDIT_LOG, MAINTENANCE_FLAG, ARCHIVE_PUSH_SECONDS: the lines backups.sh writes above
# cemetery-db: the register's backups on a host with on-host PostgreSQL and backupBucket (installed as
# /usr/local/sbin/cemetery-db by the backups step, after its settings and scripts/host/postgres-lib.sh).
#   cemetery-db info                    the backups, the WAL archive's window, and whether archiving works
#   cemetery-db backup full|incr|diff   a backup now (the timers take one daily)
#   cemetery-db restore --latest        the database as of the newest archived WAL (after pushing the current one)
#   cemetery-db restore --time <UTC>    as of that time, e.g. 2026-11-30T03:00:00Z: every later write is gone
#   cemetery-db mark <name>             a restore point now, on the audit trail with its time (the release step
#                                       marks before-<release id> before each release, which may migrate)
# A restore puts the proxy in maintenance while the database is down, and goes on the audit trail.
# Exit codes: 0 done, 1 failed (nothing was changed unless it says so), 2 usage.
set -euo pipefail
usage() { sed -n 's/^#   //p' "$0"; }
fail() { echo "cemetery-db: $*" >&2; exit 1; }
say() { echo "cemetery-db: $*"; }
[ "$(id -u)" = 0 ] || fail "run it with sudo"
iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }
pg_cluster

info() {
  pgbackrest_as_postgres info
  echo "restore points (the newest 5; cemetery-db restore --time <its time> returns to one):"
  { grep -h 'action=db-restore-point outcome=ok' "$AUDIT_LOG" 2>/dev/null || true; } | tail -n 5 | sed 's/.*detail="\(.*\)"$/  \1/'

  if pg_isready -q -h 127.0.0.1; then
    psql_admin -F ' ' -c "SELECT 'archiving: last WAL ' || coalesce(last_archived_wal, 'none') || ' at ' || coalesce(to_char(last_archived_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '-') || ', ' || failed_count || ' failed' || coalesce(' (last ' || last_failed_wal || ' at ' || to_char(last_failed_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') || ')', '') FROM pg_stat_archiver"
  fi
}

backup() {
  case "${1:-}" in full | incr | diff) ;; *) usage >&2; exit 2 ;; esac
  say "$1 backup of $STANZA"
  pgbackrest_as_postgres --type="$1" backup || fail "the $1 backup failed (see above; pgBackRest's log: /var/log/pgbackrest)"
}

# push_current_wal: the WAL written so far is in the repository before a restore replaces the data directory. The
# archiver may have a backlog (after an outage, or on a slow host each push takes seconds): it waits while the
# archive moves on, and gives up after ARCHIVE_STALL_SECONDS without progress: longer than one push may take
# (archive_command ends one after ARCHIVE_PUSH_SECONDS, and PostgreSQL tries it again at once).
# A push that failed is not retried for a minute: PostgreSQL's archiver tries a segment three times, a second apart,
# then sleeps until its latch is set or 60 s have passed (src/backend/postmaster/pgarch.c: NUM_ARCHIVE_RETRIES,
# PGARCH_AUTOWAKE_INTERVAL). A reload's SIGHUP sets that latch, so each new failure is tried again at once.
ARCHIVE_STALL_SECONDS=$((ARCHIVE_PUSH_SECONDS + 60))
push_current_wal() {
  local segment archived failed last='' failed_before='' since=$SECONDS told=$SECONDS
  segment=$(psql_admin -c 'SELECT pg_walfile_name(pg_switch_wal())')
  while :; do
    IFS='|' read -r archived failed < <(psql_admin -c "SELECT coalesce(last_archived_wal, ''), failed_count FROM pg_stat_archiver")
    # Segment names (24 upper-case hex digits, which every locale orders as ASCII does) sort in the order they are
    # written, timeline first; a .history or .partial file the archiver may have pushed last is not one.
    if [[ "$archived" =~ ^[0-9A-F]{24}$ ]] && ! [[ "$archived" < "$segment" ]]; then return 0; fi
    if [ "$archived" != "$last" ]; then last=$archived; since=$SECONDS; fi
    if [ -n "$failed_before" ] && [ "$failed" != "$failed_before" ]; then
      say "the archiver could not push a WAL segment (see /var/log/pgbackrest/$STANZA-archive-push.log): woken to try again now"
      psql_admin -c 'SELECT pg_reload_conf()' >/dev/null
    fi
    failed_before=$failed
    [ $((SECONDS - since)) -lt "$ARCHIVE_STALL_SECONDS" ] || break
    if [ $((SECONDS - told)) -ge 30 ]; then
      say "waiting for WAL $segment to reach the archive (last archived: ${last:-none})"
      told=$SECONDS
    fi
    sleep 1
  done
  local why
  why=$(psql_admin -c "SELECT coalesce('its last failure: ' || last_failed_wal || ' at ' || to_char(last_failed_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') || ', ' || failed_count || ' failed in all', 'no push failed') FROM pg_stat_archiver")
  tail -n 5 "/var/log/pgbackrest/$STANZA-archive-push.log" 2>/dev/null | sed 's/^/  /' >&2 || true
  # What the archiver is at: a push that hangs shows with its age (s), its state and where the kernel has it waiting
  # (R: running; S with a poll or read: waiting on the bucket), and the segments waiting their turn.
  ps -o pid=,etimes=,stat=,wchan:24=,args= -p "$(pgrep -d, -u postgres -f 'archiver|archive-push')" 2>/dev/null | sed 's/^ */  /' >&2 || true
  echo "  segments waiting to be archived: $(find "$PG_DATA/pg_wal/archive_status" -name '*.ready' -printf '%f\n' 2>/dev/null | sort | tr '\n' ' ')" >&2
  fail "PostgreSQL could not archive its current WAL ($segment): the archive has not moved on for $ARCHIVE_STALL_SECONDS s (last archived: ${last:-none}; $why), so a restore now would lose the writes since then; nothing was changed. See cemetery-db info and /var/log/pgbackrest"
}

restore() {
  local time='' latest=0 new_host=0
  while [ $# -gt 0 ]; do
    case "$1" in
      --latest) latest=1 ;;
      --time) [ $# -ge 2 ] || { usage >&2; exit 2; }; time=$2; shift ;;
      --new-host) new_host=1 ;; # provisioning: an empty database, no proxy yet, nothing of its WAL to keep
      *) usage >&2; exit 2 ;;
    esac
    shift
  done
  [ "$new_host" = 1 ] || [ "$latest" = 1 ] || [ -n "$time" ] || { usage >&2; exit 2; }
  [ "$latest" = 0 ] || [ -z "$time" ] || { echo "cemetery-db: --latest or --time, not both" >&2; exit 2; }

  local json count oldest
  json=$(pgbackrest_as_postgres --output=json info) || fail "cannot read the backup repository (see above)"
  count=$(jq --arg s "$STANZA" '[.[] | select(.name == $s) | .backup[]] | length' <<<"$json")
  [ "$count" -gt 0 ] || fail "the repository has no backup of $STANZA: nothing to restore (pgBackRest: $(jq -r '.[0].status.message // "no stanza"' <<<"$json"))"
  oldest=$(jq --arg s "$STANZA" '[.[] | select(.name == $s) | .backup[].timestamp.stop] | min' <<<"$json")
  audit() { if command -v cemetery-audit >/dev/null; then cemetery-audit db-restore "$1" "${time:-latest}" || true; fi; }
  local target=(--type=default)
  if [ -n "$time" ]; then
    [[ "$time" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z$ ]] || fail "--time $time: expected a UTC time such as 2026-11-30T03:00:00Z"
    local at
    at=$(date -u -d "$time" +%s) || fail "--time $time: not a valid time"
    [ "$at" -le "$(date +%s)" ] || fail "--time $time is in the future"
    # pgBackRest takes the newest backup that ended strictly before the time.
    [ "$at" -gt "$oldest" ] || fail "--time $time is before the oldest backup ended ($(iso "$oldest")): the repository keeps backups for backupRetentionDays, and the earliest time it can restore is $(iso $((oldest + 1)))"
    # pgBackRest takes "YYYY-MM-DD HH:MM:SS[.fff]+00".
    target=(--type=time "--target=$(sed 's/T/ /; s/Z$/+00/' <<<"$time")" --target-action=promote)
  fi

  local maintenance=0 started
  started=$(date +%s)
  if [ "$new_host" = 0 ]; then
    # Maintenance first (unless it is on already: then it stays on), so no write comes after the WAL pushed next.
    if command -v cemetery-maintenance >/dev/null && cemetery-maintenance status >/dev/null; then
      cemetery-maintenance on >/dev/null && maintenance=1
    fi
    if pg_isready -q -h 127.0.0.1 && ! (push_current_wal); then
      [ "$maintenance" = 0 ] || cemetery-maintenance off >/dev/null
      exit 1
    fi
  fi
  say "stopping PostgreSQL ($PG_UNIT) to restore $STANZA as of ${time:-the newest archived WAL}"
  systemctl stop "$PG_UNIT"
  if ! pgbackrest_as_postgres --delta "${target[@]}" restore; then
    audit failed
    # pgBackRest writes backup.manifest into the data directory only once it has begun to replace it.
    if [ ! -e "$PG_DATA/backup.manifest" ]; then
      systemctl start "$PG_UNIT" || true
      [ "$maintenance" = 0 ] || cemetery-maintenance off >/dev/null
      fail "pgBackRest's restore failed before it changed anything (see above); PostgreSQL is started again"
    fi
    fail "pgBackRest's restore failed (see above) after it began to replace the data directory; PostgreSQL is stopped and maintenance stays on: run the restore again"
  fi
  rm -f "$ARCHIVE_UNREADABLE_MARK"
  systemctl start "$PG_UNIT" || true
  # Replaying a week of WAL can take long: an hour before giving up. An archive that cannot be read stops PostgreSQL
  # (cemetery-archive-get) rather than end recovery early: it is started again until the archive answers
  # (systemd's Restart=on-failure usually does it first). It stopping for another reason ends the wait.
  local ready=0 down=0 deadline=$(($(date +%s) + 3600))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    if pg_isready -q -h 127.0.0.1 && [ "$(psql_admin -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ]; then ready=1; break; fi
    if pg_lsclusters --no-header "$PG_VERSION" "$PG_NAME" 2>/dev/null | grep -qw down; then down=$((down + 1)); else down=0; fi
    if [ "$down" -ge 10 ] && [ -e "$ARCHIVE_UNREADABLE_MARK" ]; then
      rm -f "$ARCHIVE_UNREADABLE_MARK"
      say "PostgreSQL stopped during recovery, $(($(date +%s) - started)) s into the restore: the archive could not be read (see /var/log/pgbackrest); starting it again"
      systemctl start "$PG_UNIT" || true
      down=0
    elif [ "$down" -ge 10 ]; then
      break
    fi
    sleep 1
  done
  rm -f "$ARCHIVE_UNREADABLE_MARK"
  if [ "$ready" = 0 ]; then
    audit failed
    # A time after the newest archived WAL ends recovery short of its target, and PostgreSQL refuses to start.
    fail "PostgreSQL did not finish recovering after the restore (it stopped, or an hour passed): see journalctl -u $PG_UNIT and /var/log/postgresql (a time later than the newest archived WAL cannot be reached: restore an earlier time)"
  fi
  [ "$maintenance" = 0 ] || cemetery-maintenance off >/dev/null
  audit ok
  say "restored $STANZA as of ${time:-the newest archived WAL} in $(($(date +%s) - started)) s; it now writes a new timeline, archived as before"
  # The new timeline's own backup: a later restore must not pick a backup the old timeline took after the fork
  # (pgBackRest refuses it: src/command/restore/timeline.c). A new host's backups step takes it itself.
  [ "$new_host" = 1 ] || backup full
}

# mark NAME: pg_create_restore_point (a named point in the WAL), and its time, to the millisecond, on the audit trail.
mark() {
  [[ "${1:-}" =~ ^[A-Za-z0-9._-]{1,60}$ ]] || { usage >&2; exit 2; }
  psql_admin -v name="$1" <<<"SELECT pg_create_restore_point(:'name');" >/dev/null || fail "PostgreSQL could not record restore point $1"
  local at
  at=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)
  cemetery-audit db-restore-point ok "$1 at $at" || true
  say "restore point $1 at $at (to return to it: cemetery-db restore --time $at)"
}

case "${1:-}" in
  info) info ;;
  mark) mark "${2:-}" ;;
  backup) backup "${2:-}" ;;
  restore) shift; restore "$@" ;;
  -h | --help | help) usage ;;
  *) usage >&2; exit 2 ;;
esac
