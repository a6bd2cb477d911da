#!/usr/bin/env bash
# Host step (order: infra/host-steps.ts): the front door. Debian's Caddy on 80
# and 443 in front of the PM2 cluster, which listens on loopback only. With a
# DOMAIN: HTTPS with a certificate from Let's Encrypt (ISSUER=acme; issued and
# renewed by Caddy) or from Caddy's own CA (ISSUER=internal: a host with no
# public name), and port 80 redirected to it. Without: plain HTTP on port 80.
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
[[ "$ISSUER" =~ ^(acme|internal)$ ]] || fail "ISSUER must be acme or internal, got '$ISSUER'"

apt_install caddy

caddyfile() {
  echo "# cemetery-backend's front door (written by provisioning: scripts/host/proxy.sh)"
  echo "{"
  [ -z "$acme_email" ] || echo "	email $acme_email"
  # Caddy's CA stays Caddy's: it is not added to this host's trust store.
  [ "$ISSUER" != internal ] || echo "	skip_install_trust"
  # Caddy 2.6.2 creates the socket under its umask (0755: only its owner, caddy, and root may connect) in
  # /run/caddy, which the drop-in below makes caddy's alone (0700). `caddy reload` (ExecReload) reads
  # this address from the file it loads (cmd/commandfuncs.go DetermineAdminAPIAddress).
  echo "	admin unix/$ADMIN_SOCKET"
  # A client that trickles its headers or body is cut off; responses (a large map) are not.
  cat <<'GLOBAL'
	servers {
		timeouts {
			read_header 10s
			read_body 30s
			idle 2m
		}
	}
}
GLOBAL
  if [ -n "$domain" ]; then echo "$domain {"; else echo ":80 {"; fi
  [ "$ISSUER" != internal ] || echo "	tls internal"
  # Browsers that saw the site once never try plain HTTP for it again. Deferred: set after the
  # response comes back from the app, so there is one such header whatever the app sends.
  if [ -n "$domain" ]; then
    cat <<'HSTS'
	header {
		Strict-Transport-Security "max-age=31536000"
		defer
	}
HSTS
  fi
  # Caddy 2.6.2's file matcher stats the flag on every request (fileserver/matcher.go selectFile, no cache): on and
  # off need no reload, and a reload keeps the state. Its root is set: unset, the path would be taken relative to
  # Caddy's working directory (caddyhttp.SanitizedPathJoin). It fails open: a flag Caddy cannot stat is off
  # (strictFileExists), so its directory is root's and 0755. The probes stay the app's: a monitor sees the app itself.
  cat <<MAINTENANCE
	@maintenance {
		file {
			root $(dirname "$MAINTENANCE_FLAG")
			try_files $(basename "$MAINTENANCE_FLAG")
		}
		not path /healthz /readyz
	}
	handle @maintenance {
		header Retry-After 120
		header Content-Type "text/html; charset=utf-8"
		header Cache-Control no-store
		respond \`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Down for maintenance</title></head><body><h1>Down for maintenance</h1><p>The register is being worked on. Please try again in a few minutes.</p></body></html>\` 503
	}
MAINTENANCE
  # One upstream: PM2's cluster master hands each connection to a worker. A GET
  # that fails (a worker restarting or killed) is tried again, on a new
  # connection, so another worker, for up to 15 s; one whose connection was handed
  # to a worker just killed gets no headers, and counts as failed after 10 s
  # (Caddy 2.6.2 reverseproxy.go tryAgain: only GETs once the request was sent).
  # Idle connections to the app close after 30 s, before the app closes them (72 s).
  cat <<UPSTREAM
	reverse_proxy 127.0.0.1:$APP_PORT {
		lb_try_duration 15s
		lb_try_interval 250ms
		transport http {
			dial_timeout 3s
			response_header_timeout 10s
			keepalive 30s
		}
	}
}
UPSTREAM
}

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

# Caddy answers on port 80: the redirect to HTTPS, or (no domain) the app itself.
host=${domain:-localhost}
for _ in $(seq 1 30); do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $host" http://127.0.0.1/readyz || true)
  [ "$code" != 000 ] && break
  sleep 1
done
[ "$code" != 000 ] || fail "caddy does not answer on port 80 (journalctl -u caddy)"
if [ -n "$domain" ] && [ "$code" != 308 ]; then fail "expected port 80 to redirect to https://$domain, got HTTP $code"; fi
if [ -n "$domain" ]; then log "serving https://$domain (certificates: $ISSUER)"; else log "serving http on port 80"; fi
