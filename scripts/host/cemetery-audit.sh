# shellcheck shell=bash
# shellcheck disable=SC2154 # AUDIT_LOG is set by the line release.sh writes above this file
# cemetery-audit ACTION OUTCOME [DETAIL]: one line on the host's audit trail
# (installed as /usr/local/sbin/cemetery-audit by the release step, after a line
# that sets AUDIT_LOG). The release tool, cemetery-admin and cemetery-maintenance
# call it; `cemetery-audit --show [N]` prints the last N lines (default 20).
# A line is logfmt: when, who (the SSH user who ran sudo, the fingerprint of the
# key that user logged in with, from where), what, the outcome. Root can
# rewrite it like any file of root's: it records, it does not prove.
set -euo pipefail
umask 027
usage() { echo "usage: cemetery-audit ACTION OUTCOME [DETAIL] | cemetery-audit --show [N]"; }
[ "$(id -u)" = 0 ] || { echo "cemetery-audit: run it with sudo" >&2; exit 1; }
case "${1:-}" in
  -h | --help) usage; exit 0 ;;
  --show)
    n=${2:-20}
    case "$n" in '' | *[!0-9]*) usage >&2; exit 2 ;; esac
    if [ -f "$AUDIT_LOG" ]; then tail -n "$n" "$AUDIT_LOG"; else echo "no audit entries yet ($AUDIT_LOG)"; fi
    exit 0 ;;
esac
if [ $# -lt 2 ] || [ $# -gt 3 ]; then usage >&2; exit 2; fi

# sshd's ExposeAuthInfo names a file with the session's methods ("publickey <type> <key>"); sudo keeps
# SSH_USER_AUTH and SSH_CONNECTION (the sudoers drop-in of the release step).
key=unknown
if [ -n "${SSH_USER_AUTH:-}" ] && [ -r "$SSH_USER_AUTH" ]; then
  key=$(awk '$1 == "publickey" { print $2, $3; exit }' "$SSH_USER_AUTH" | ssh-keygen -lf - 2>/dev/null | awk '{ print $2 }') || key=unknown
  [ -n "$key" ] || key=unknown
fi
from=${SSH_CONNECTION:-local}
from=${from%% *}
# One line per entry whatever DETAIL holds: quotes and backslashes escaped, newlines made spaces.
quote() { printf '"%s"' "$(printf '%s' "$1" | tr '\n' ' ' | sed 's/\\/\\\\/g; s/"/\\"/g')"; }
word() { printf '%s' "$1" | tr -c 'A-Za-z0-9._:@/+=-' '_'; }

# Root's, readable by adm (as /var/log's own logs are); a directory no one else can plant a link in.
install -d -m 0750 -o root -g adm "$(dirname "$AUDIT_LOG")"
[ -e "$AUDIT_LOG" ] || install -m 0640 -o root -g adm /dev/null "$AUDIT_LOG"
printf 'time=%s user=%s key=%s from=%s action=%s outcome=%s detail=%s\n' \
  "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(word "${SUDO_USER:-$(id -un)}")" "$(word "$key")" "$(word "$from")" \
  "$(word "$1")" "$(word "$2")" "$(quote "${3:-}")" >>"$AUDIT_LOG"
