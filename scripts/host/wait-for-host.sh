#!/usr/bin/env bash
# Host step (order: infra/host-steps.ts): the host is up: boot finished, cloud-init done (where present), apt free.
source "$(dirname "$0")/lib.sh"

if command -v cloud-init >/dev/null 2>&1; then
  cloud-init status --wait >/dev/null || fail "cloud-init did not finish cleanly (cloud-init status --long)"
fi
# "degraded" (a unit failed) still lets us provision; wait only for the boot to end.
systemctl is-system-running --wait >/dev/null || true
# First-boot unattended upgrades hold the dpkg lock.
for _ in $(seq 1 120); do
  pgrep -x 'apt|apt-get|dpkg|unattended-upgr' >/dev/null || break
  sleep 5
done
# target aws: cloud-init's bootcmd keeps non-root users away from the metadata service (infra/metadata-guard.ts).
guard=${METADATA_GUARD:-} # optional argument (arguments are read-only)
if [ -n "$guard" ]; then
  for tables in iptables ip6tables; do
    "$tables" -w -S OUTPUT 2>/dev/null | grep -q -- "--comment $guard" ||
      fail "the metadata guard ($tables rules commented $guard, installed at boot by cloud-init's bootcmd) is missing: any local user could read the host's SSH key from the user data (journalctl -b -u cloud-init)"
  done
fi
log "host ready: $(. /etc/os-release && echo "$PRETTY_NAME"), $(nproc) vCPU"
