#!/usr/bin/env bash
# Host step (order: infra/host-steps.ts): the front door. Debian's Caddy on 80
# and 443 in front of the PM2 cluster, which listens on loopback only. With a
# DOMAIN: HTTPS with a certificate from Let's Encrypt (ISSUER=acme; issued and
# renewed by Caddy) or from Caddy's own CA (ISSUER=internal: a host with no
# public name), and port 80 redirected to it. Without: plain HTTP on port 80.
# Behind a load balancer (BALANCER_RANGES, where its nodes connect from): plain
# HTTP on port 80 for it alone, which holds the certificate (caddyfile.sh).
# The config is validated before it replaces the old one; a changed config is
# applied with a graceful reload (open connections finish). Caddy's admin API,
# which that reload uses, listens on a unix socket only root and caddy reach:
# on localhost:2019 any local user could load a config of their own.
# While MAINTENANCE_FLAG exists (cemetery-maintenance on|off) every request but
# the probes gets a 503 page with Retry-After.
source "$(dirname "$0")/lib.sh"
require APP_PORT ISSUER MAINTENANCE_FLAG
# Optional arguments (lib.sh makes every argument read-only).
domain=${DOMAIN:-}
acme_email=${ACME_EMAIL:-}
balancer_ranges=${BALANCER_RANGES:-}
[[ "$ISSUER" =~ ^(acme|internal)$ ]] || fail "ISSUER must be acme or internal, got '$ISSUER'"
[[ "$balancer_ranges" =~ ^([0-9./]+( [0-9./]+)*)?$ ]] || fail "BALANCER_RANGES must be IPv4 CIDRs separated by spaces, got '$balancer_ranges'"
# shellcheck source=caddyfile.sh
source "$(dirname "$0")/caddyfile.sh"

apt_install caddy

ADMIN_SOCKET=/run/caddy/admin.sock
install -d -m 0755 -o root -g root "$(dirname "$MAINTENANCE_FLAG")"
write_file /etc/systemd/system/caddy.service.d/10-admin-socket.conf 0644 root:root <<'DROPIN'
# cemetery-backend: a directory for Caddy's admin socket that only caddy (and root) can enter
[Service]
RuntimeDirectory=caddy
RuntimeDirectoryMode=0700
DROPIN
unit_changed=$WROTE
[ "$unit_changed" = 0 ] || systemctl daemon-reload

# Validated as the service's user, against the storage it uses, before it replaces anything.
candidate=$(mktemp)
trap 'rm -f "$candidate"' EXIT
caddyfile >"$candidate"
chmod 0644 "$candidate"
validation=$(cd / && sudo -u caddy -H caddy validate --adapter caddyfile --config "$candidate" 2>&1) ||
  fail "the proxy config does not validate: $(tail -n 3 <<<"$validation")"
write_file /etc/caddy/Caddyfile 0644 root:root <"$candidate"

systemctl is-enabled --quiet caddy || systemctl enable --quiet caddy
if ! systemctl is-active --quiet caddy; then
  systemctl start caddy
elif [ "$unit_changed" = 1 ]; then
  # The running Caddy's admin API is not on the new socket yet (a reload would knock at the socket): restart once.
  systemctl restart caddy
  log "restarted caddy: its admin API is on $ADMIN_SOCKET"
elif [ "$WROTE" = 1 ]; then
  systemctl reload caddy
  log "reloaded caddy"
fi

# Caddy answers on port 80: the redirect to HTTPS, or (no domain, or behind the balancer) the app itself; behind the
# balancer, before the app's first release, with a closed connection (caddyfile.sh front_door_answer).
host=${domain:-localhost}
answer=""
for _ in $(seq 1 30); do
  answer=$(front_door_answer http://127.0.0.1/readyz "$host") && break
  sleep 1
done
[ -n "$answer" ] || fail "caddy does not answer on port 80 (journalctl -u caddy)"
if [ -n "$balancer_ranges" ]; then
  log "serving http on port 80 to the load balancer (X-Forwarded-For believed from $balancer_ranges)$([ "$answer" != none ] || echo "; no app answers yet: Caddy closes GETs unanswered until the release step starts it")"
elif [ -n "$domain" ]; then
  [ "$answer" = 308 ] || fail "expected port 80 to redirect to https://$domain, got HTTP $answer"
  log "serving https://$domain (certificates: $ISSUER)"
else
  log "serving http on port 80"
fi
