#!/usr/bin/env bash
# Host step (databaseMode onHost with backupBucket) (order: infra/host-steps.ts): continuous backups of the
# register with pgBackRest (Debian's package) to an S3 bucket:
#   - every WAL segment archived as PostgreSQL fills it, and at the latest ARCHIVE_TIMEOUT seconds after a
#     commit (archive_timeout); archive_command returns once the segment is in the bucket;
#   - a full backup weekly and an incremental one on the other days (systemd timers, caught up after downtime);
#   - full backups kept RETENTION_DAYS days: pgBackRest's time retention keeps what a restore to any point
#     of them needs, the WAL included.
# Installs `cemetery-db` (backup, info, restore [--time]). With RESTORE_FROM (latest or a UTC time), a host
# whose database is still empty (a lost host's replacement) is first restored from the repository.
# On stdin: the app role's password (set again after a restore), then (S3_CREDENTIALS stdin, target ssh) the S3
# access key id and secret key, which go into root's pgBackRest file, readable by postgres alone; with
# S3_CREDENTIALS instance-profile (target aws) those two lines are empty, and root renews the instance profile's
# credentials into pgBackRest's include directory (cemetery-s3-credentials).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/postgres-lib.sh"
require STANZA S3_BUCKET S3_ENDPOINT S3_PORT S3_REGION S3_URI_STYLE S3_CREDENTIALS REPO_PATH RETENTION_DAYS ARCHIVE_TIMEOUT DB_NAME DB_USER AUDIT_LOG MAINTENANCE_FLAG
here=$(dirname "$0")

IFS= read -r DB_PASSWORD || true
IFS= read -r S3_KEY || true
IFS= read -r S3_KEY_SECRET || true
[[ "$DB_PASSWORD" =~ ^[A-Za-z0-9]{16,}$ ]] || fail "expected the database password (16+ letters and digits) on the first line of stdin"
case "$S3_CREDENTIALS" in
  stdin)
    [[ "$S3_KEY" =~ ^[A-Za-z0-9]{3,128}$ ]] || fail "expected the S3 access key id on the second line of stdin"
    [[ "$S3_KEY_SECRET" =~ ^[^[:space:]]{8,128}$ ]] || fail "expected the S3 secret access key on the third line of stdin"
    key_lines=$(printf 'repo1-s3-key=%s\nrepo1-s3-key-secret=%s' "$S3_KEY" "$S3_KEY_SECRET")
    ;;
  instance-profile)
    [ -z "$S3_KEY$S3_KEY_SECRET" ] || fail "S3_CREDENTIALS is instance-profile, and stdin holds an S3 key pair too: expected none"
    key_lines="# the instance profile's credentials: conf.d/cemetery-s3-credentials.conf (cemetery-s3-credentials)"
    ;;
  *) fail "S3_CREDENTIALS: expected stdin or instance-profile, got $S3_CREDENTIALS" ;;
esac

apt_install pgbackrest jq
pg_cluster

if [ "$S3_CREDENTIALS" = instance-profile ]; then
  write_file /usr/local/sbin/cemetery-s3-credentials 0755 root:root <"$here/cemetery-s3-credentials.sh"
  write_file /etc/systemd/system/cemetery-s3-credentials.service 0644 root:root <<'UNIT'
[Unit]
Description=cemetery-backend: the instance profile's credentials for pgBackRest
# At boot the metadata service is reached once the network is up; a failed try is made again within seconds, not at
# the timer's next run (credentials older than their lifetime, after a long stop, fail every archive-push meanwhile).
Wants=network-online.target
After=network-online.target
StartLimitIntervalSec=120
StartLimitBurst=6

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/cemetery-s3-credentials
Restart=on-failure
RestartSec=10s
UNIT
  credential_units=$WROTE
  # AWS offers new credentials at least 5 minutes before the old ones expire: every 2 minutes never misses them.
  write_file /etc/systemd/system/cemetery-s3-credentials.timer 0644 root:root <<'UNIT'
[Unit]
Description=cemetery-backend: renew the instance profile's credentials for pgBackRest

[Timer]
OnBootSec=5s
OnUnitActiveSec=2min
AccuracySec=1s

[Install]
WantedBy=timers.target
UNIT
  if [ "$WROTE" = 1 ] || [ "$credential_units" = 1 ]; then systemctl daemon-reload; fi
  systemctl enable --now --quiet cemetery-s3-credentials.timer
  # Now, before pgBackRest needs them; for up to a minute, since a profile just associated with a running instance
  # reaches its metadata service after a few seconds.
  for try in $(seq 30); do
    /usr/local/sbin/cemetery-s3-credentials && break
    [ "$try" -lt 30 ] || fail "no credentials from the instance profile for a minute (see above): pgBackRest cannot reach s3://$S3_BUCKET"
    sleep 2
  done
fi

# Root's file, readable by postgres (pgBackRest runs as postgres); not by the app user, whose workers could otherwise
# reach the backups of the whole register, or rewrite them.
write_file /etc/pgbackrest/pgbackrest.conf 0640 root:postgres <<CONF
# cemetery-backend: written by provisioning (scripts/host/backups.sh)
[global]
repo1-type=s3
repo1-s3-bucket=$S3_BUCKET
repo1-s3-endpoint=$S3_ENDPOINT
repo1-storage-port=$S3_PORT
repo1-s3-region=$S3_REGION
repo1-s3-uri-style=$S3_URI_STYLE
$key_lines
repo1-path=$REPO_PATH
repo1-retention-full-type=time
repo1-retention-full=$RETENTION_DAYS
compress-type=zst
start-fast=y
# A restore's WAL comes through this: an archive that cannot be read stops recovery instead of ending it early.
recovery-option=restore_command=/usr/local/sbin/cemetery-archive-get %f "%p"
log-level-console=info
log-level-file=detail

[$STANZA]
pg1-path=$PG_DATA
CONF
conf_written=$WROTE

# The longest one WAL segment's push may take before it counts as failed (archive_command, below): a 16 MiB segment,
# compressed, goes in a few requests, each of which pgBackRest gives io-timeout (60 s) to make progress.
ARCHIVE_PUSH_SECONDS=120

# The host's command (its settings first, then the cluster helpers, then the command itself).
write_file /usr/local/sbin/cemetery-db 0755 root:root <<<"$(
  printf '#!/bin/bash\nSTANZA=%q\nDB_NAME=%q\nAUDIT_LOG=%q\nMAINTENANCE_FLAG=%q\nARCHIVE_PUSH_SECONDS=%q\n' "$STANZA" "$DB_NAME" "$AUDIT_LOG" "$MAINTENANCE_FLAG" "$ARCHIVE_PUSH_SECONDS"
  cat "$here/postgres-lib.sh" "$here/cemetery-db.sh"
)"
# PostgreSQL's restore_command during a restore (pgBackRest's recovery-option above).
write_file /usr/local/sbin/cemetery-archive-get 0755 root:root <<<"$(printf '#!/bin/bash\nSTANZA=%q\nUNREADABLE_MARK=%q\n' "$STANZA" "$ARCHIVE_UNREADABLE_MARK"; cat "$here/cemetery-archive-get.sh")"
# The audit trail's command, as the release step installs it (a restore before the first release records too).
write_file /usr/local/sbin/cemetery-audit 0755 root:root <<<"$(printf '#!/bin/bash\nAUDIT_LOG=%s\n' "$AUDIT_LOG"; cat "$here/cemetery-audit.sh")"

# archive_timeout acts only once PostgreSQL's checkpointer is woken after recovery has ended: at a start it reckons
# its first sleep while recovery is still in progress, leaving archive_timeout out, and sleeps checkpoint_timeout
# (5 min) unless woken (checkpointer.c, CheckpointerMain's loop). So every start wakes it with a reload, once
# pg_ctlcluster's start has returned (pg_ctl waits until the server is ready, which a primary is once recovery has
# ended); and a crash ends the postmaster (restart_after_crash, below) so that systemd starts it again (Restart= from
# the postgres step) instead of the postmaster restarting itself, unseen. '-': a start that failed has nothing to wake.
write_file /etc/systemd/system/postgresql@.service.d/cemetery-archive-timeout.conf 0644 root:root <<'UNIT'
# cemetery-backend: written by provisioning (scripts/host/backups.sh)
[Service]
ExecStartPost=-/usr/bin/pg_ctlcluster --skip-systemctl-redirect %i reload
UNIT
[ "$WROTE" = 0 ] || systemctl daemon-reload

# Archiving's settings: written once the repository is known to take this database's WAL (before a restore, or
# after the stanza's check), so a refused bucket leaves PostgreSQL as it was, not piling up WAL it cannot push.
# archive_command: pgBackRest's push of one WAL segment,
# - bounded in time. pgBackRest's io-timeout bounds each wait for the bucket, not a whole push, and a push that
#   neither ends nor fails holds the archiver, and every segment after it, with nothing counted as failed
#   (pgbackrest/pgbackrest#2800). The VM tier saw archiving stop that way in 4 of about 12 runs, its cause not found:
#   each time cemetery-db restore refused, and archiving went on only once PostgreSQL was restarted. Ended after
#   ARCHIVE_PUSH_SECONDS, a push fails with 124: PostgreSQL counts the failure (pg_stat_archiver, which cemetery-db
#   info reads) and tries the segment again; only a signal or a status over 125 would end the archiver itself
#   (src/backend/postmaster/pgarch.c pgarch_archiveXlog). --foreground keeps the push in the archiver's process
#   group, where PostgreSQL's own signals at a shutdown reach it.
# - logged to /var/log/pgbackrest/$STANZA-archive-push.log: pgBackRest writes archive-push's log file only when
#   log-level-file is on its command line, not from its configuration file (src/config/config.c cfgLogFile).
# pgBackRest's check and backup refuse an archive_command without "pgbackrest" in it (src/command/check/common.c).
archive_conf_written=0
archive_conf() {
  write_file "$PG_CONF_DIR/cemetery-backups.conf" 0644 postgres:postgres <<CONF
# cemetery-backend: WAL archived to the backup bucket by pgBackRest (scripts/host/backups.sh)
archive_mode = on
archive_command = 'timeout --foreground $ARCHIVE_PUSH_SECONDS pgbackrest --stanza=$STANZA --log-level-file=info archive-push %p'
archive_timeout = ${ARCHIVE_TIMEOUT}s
# A backend's crash (the OOM killer's pick) ends the postmaster, which systemd starts again: see the unit's drop-in.
restart_after_crash = off
CONF
  [ "$WROTE" = 0 ] || archive_conf_written=1
}

marker=/var/lib/cemetery-backend/backups-configured
if [ -n "${RESTORE_FROM:-}" ] && [ -e "$marker" ]; then
  log "restoreFrom is read on a new host only, and this one is backed up already: nothing was restored (sudo cemetery-db restore restores this host)"
fi
if [ -n "${RESTORE_FROM:-}" ] && [ ! -e "$marker" ]; then
  # Only a database nothing was written to: restoreFrom is for a new host, cemetery-db restore for this one.
  tables=$(psql_admin -d "$DB_NAME" -c "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
  [ "$tables" = 0 ] || fail "restoreFrom is set, but this host's database $DB_NAME already has $tables tables: it is not a new host. To restore it, run sudo cemetery-db restore on it (README: Restoring the database); remove restoreFrom once a new host is restored"
  log "restoring $DB_NAME from the backups in s3://$S3_BUCKET$REPO_PATH ($RESTORE_FROM)"
  # The empty cluster never archives (it is stopped before archive_mode applies), and the restored one promotes
  # with archiving on, so its new timeline's history reaches the repository.
  archive_conf
  if [ "$RESTORE_FROM" = latest ]; then restore=(--latest); else restore=(--time "$RESTORE_FROM"); fi
  if ! cemetery-db restore --new-host "${restore[@]}"; then
    # The empty database must not archive into the lost host's repository (pushes refused, WAL piling up).
    rm -f "$PG_CONF_DIR/cemetery-backups.conf"
    if [ "$(psql_admin -c 'SHOW archive_mode' 2>/dev/null)" = on ]; then systemctl restart "$PG_UNIT"; fi
    fail "restoring from s3://$S3_BUCKET$REPO_PATH failed (see above); archiving stays off: fix what it says, then pulumi up again"
  fi
  # The restored role has the lost host's password: this stack's takes its place (SQL on stdin, never argv).
  psql_admin <<<"ALTER ROLE \"$DB_USER\" PASSWORD '$DB_PASSWORD';"
fi

# The repository's stanza: made once, checked each time (before archiving starts, so no WAL is pushed to a
# repository that cannot take it). One that holds another database's backups (a lost host's, and no
# restoreFrom) is refused, never overwritten.
if ! created=$(pgbackrest_as_postgres --log-level-console=warn stanza-create 2>&1); then
  if grep -q 'do not match the database' <<<"$created"; then
    fail "s3://$S3_BUCKET$REPO_PATH holds the backups of another database (a lost host's?), and this host's is new: set restoreFrom latest (or a time) to restore them here, or point backupBucket elsewhere. pgBackRest said: $created"
  fi
  fail "pgBackRest could not create its stanza in s3://$S3_BUCKET$REPO_PATH: $created"
fi
archive_conf
if [ "$(psql_admin -c 'SHOW archive_mode')" != on ]; then
  # archive_mode takes a restart; the command and the timeout a reload.
  systemctl restart "$PG_UNIT"
  pg_wait_ready 60 || fail "PostgreSQL did not come back after archiving was switched on"
elif [ "$archive_conf_written" = 1 ] || [ "$conf_written" = 1 ]; then
  psql_admin -c 'SELECT pg_reload_conf()' >/dev/null
fi
pgbackrest_as_postgres --log-level-console=warn check ||
  fail "pgBackRest's check failed: PostgreSQL cannot archive WAL to s3://$S3_BUCKET$REPO_PATH (see above)"

# A failed backup (the bucket unreachable for a while; on aws, credentials that expired during a long one) is tried
# again 15 minutes later, at most three times: the fifth start within 2 hours is refused, and the unit stays failed.
write_file /etc/systemd/system/cemetery-db-backup@.service 0644 root:root <<'UNIT'
[Unit]
Description=cemetery-backend: %i backup of the register (pgBackRest)
After=postgresql.service
StartLimitIntervalSec=2h
StartLimitBurst=4

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/cemetery-db backup %i
Restart=on-failure
RestartSec=15min
UNIT
units=$WROTE
timer() { # timer KIND CALENDAR
  write_file "/etc/systemd/system/cemetery-db-backup-$1.timer" 0644 root:root <<UNIT
[Unit]
Description=cemetery-backend: $1 backup of the register

[Timer]
OnCalendar=$2
# A backup missed while the host was down runs once it is up again.
Persistent=true
RandomizedDelaySec=10min
Unit=cemetery-db-backup@$1.service

[Install]
WantedBy=timers.target
UNIT
  [ "$WROTE" = 0 ] || units=1
}
timer full 'Sun *-*-* 02:00:00 UTC'
timer incr 'Mon..Sat *-*-* 02:00:00 UTC'
[ "$units" = 0 ] || systemctl daemon-reload
systemctl enable --now --quiet cemetery-db-backup-full.timer cemetery-db-backup-incr.timer

# The first full backup, once per host: from it on, WAL makes any later time restorable.
if [ ! -e "$marker" ]; then
  cemetery-db backup full
  install -D -m 0644 /dev/null "$marker"
fi
log "backups: WAL to s3://$S3_BUCKET$REPO_PATH within ${ARCHIVE_TIMEOUT} s of a commit; full weekly, incremental daily, kept $RETENTION_DAYS days"
