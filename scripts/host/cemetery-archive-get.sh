# shellcheck shell=bash
# shellcheck disable=SC2154 # STANZA and UNREADABLE_MARK are set by the lines backups.sh writes above this file
# cemetery-archive-get WAL_NAME PATH: PostgreSQL's restore_command during a restore (pgBackRest's recovery-option,
# written by backups.sh; installed as /usr/local/sbin/cemetery-archive-get, run as postgres).
#
# PostgreSQL 17 takes a restore_command that exits 1-125 for "the archive has no such file" and ends recovery there,
# promoting a database without the rest of the archive; only a signal or an exit status over 125 stops recovery
# (FATAL) instead (src/backend/access/transam/xlogarchive.c RestoreArchivedFile, src/common/wait_error.c
# wait_result_is_any_signal). pgBackRest 2.55.1's archive-get exits 1 for a file the repository lacks, and with its
# error code, 25-125, when it fails (src/command/archive/get/get.c, src/build/error/parse.c): an S3 outage that outlasts
# its retries (io-timeout, 60 s) would end the restore early and silently. So any failure but "not there" becomes 126:
# PostgreSQL stops, and is started again (systemd's Restart=on-failure, and cemetery-db restore) to carry on.
set -euo pipefail
[ $# = 2 ] || { echo "usage: cemetery-archive-get WAL_NAME PATH" >&2; exit 126; }
status=0
pgbackrest --stanza="$STANZA" archive-get "$1" "$2" || status=$?
# 0 and 1 as they are; so is a signal's status (a fast shutdown's SIGTERM, 143, makes PostgreSQL exit cleanly).
if [ "$status" -le 1 ] || [ "$status" -gt 125 ]; then exit "$status"; fi
echo "cemetery-archive-get: pgBackRest could not read $1 from the archive (exit $status; see /var/log/pgbackrest): recovery stops here instead of ending early, and goes on when PostgreSQL is started again" >&2
# For cemetery-db restore, which starts PostgreSQL again only for this reason (postgres owns /run/postgresql).
touch "$UNREADABLE_MARK" 2>/dev/null || true
exit 126
