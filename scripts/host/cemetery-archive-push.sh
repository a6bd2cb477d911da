# shellcheck shell=bash
# shellcheck disable=SC2154 # STANZA and PUSH_SECONDS are set by the lines backups.sh writes above this file
# cemetery-archive-push PATH: PostgreSQL's archive_command (written by backups.sh; installed as
# /usr/local/sbin/cemetery-archive-push, run by the archiver as postgres): pgBackRest's push of one WAL segment,
#
# - bounded in time. pgBackRest's io-timeout bounds each wait for the bucket, not a whole push, and a push that
#   neither ends nor fails holds the archiver, and every segment after it, with nothing counted as failed
#   (pgbackrest/pgbackrest#2800). The VM tier saw archiving stop that way in 4 of about 12 runs, its cause not found:
#   each time cemetery-db restore refused, and archiving went on only once PostgreSQL was restarted. Ended after
#   PUSH_SECONDS, it fails with 124: PostgreSQL counts the failure (pg_stat_archiver, which cemetery-db info reads) and
#   tries the segment again; only a status over 125 or a signal would end the archiver itself (src/backend/
#   postmaster/pgarch.c pgarch_archiveXlog). --foreground: the push stays in the archiver's process group, so
#   PostgreSQL's own signals to it at a shutdown reach it as before.
# - logged to /var/log/pgbackrest/$STANZA-archive-push.log. pgBackRest writes archive-push's log file only when
#   log-level-file is given on its command line, not from its configuration file (src/config/config.c cfgLogFile).
set -euo pipefail
[ $# = 1 ] || { echo "usage: cemetery-archive-push PATH" >&2; exit 1; }
exec timeout --foreground "$PUSH_SECONDS" pgbackrest --stanza="$STANZA" --log-level-file=info archive-push "$1"
