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
log "host ready: $(. /etc/os-release && echo "$PRETTY_NAME"), $(nproc) vCPU"
