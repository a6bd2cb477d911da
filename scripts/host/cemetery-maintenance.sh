# shellcheck shell=bash
# shellcheck disable=SC2154 # MAINTENANCE_FLAG is set by the line release.sh writes above this file
# cemetery-maintenance on|off|status: the maintenance switch (installed as
# /usr/local/sbin/cemetery-maintenance by the release step, after a line that
# sets MAINTENANCE_FLAG). While the flag file exists, Caddy answers every
# request but /healthz and /readyz with 503, Retry-After and a short page
# (scripts/host/proxy.sh). Caddy looks for the file on every request: switching
# needs no reload, and a reload, a proxy step or a reboot keeps the state.
# Exit codes: 0 done (status: off), 1 failed, 2 usage, 3 status: on.
set -euo pipefail
usage() { echo "usage: cemetery-maintenance on|off|status"; }
case "${1:-}" in
  -h | --help | help) usage; exit 0 ;;
  on | off | status) [ $# = 1 ] || { usage >&2; exit 2; } ;;
  *) usage >&2; exit 2 ;;
esac
[ "$(id -u)" = 0 ] || { echo "cemetery-maintenance: run it with sudo" >&2; exit 1; }
case "$1" in
  status)
    if [ -e "$MAINTENANCE_FLAG" ]; then
      echo "maintenance is on since $(date -u -r "$MAINTENANCE_FLAG" +%Y-%m-%dT%H:%M:%SZ): the proxy answers 503"
      exit 3
    fi
    echo "maintenance is off: the proxy serves the app" ;;
  on)
    if [ -e "$MAINTENANCE_FLAG" ]; then echo "maintenance is already on"; exit 0; fi
    # Root's directory (the app user can neither make nor remove the flag).
    install -d -m 0755 -o root -g root "$(dirname "$MAINTENANCE_FLAG")"
    : >"$MAINTENANCE_FLAG"
    cemetery-audit maintenance-on ok
    echo "maintenance is on: the proxy answers 503 (Retry-After) to all but /healthz and /readyz" ;;
  off)
    if [ ! -e "$MAINTENANCE_FLAG" ]; then echo "maintenance is already off"; exit 0; fi
    rm -f "$MAINTENANCE_FLAG"
    cemetery-audit maintenance-off ok
    echo "maintenance is off: the proxy serves the app" ;;
esac
