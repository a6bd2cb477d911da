# shellcheck shell=bash
# The Caddyfile of the front door (scripts/host/proxy.sh), apart so that a
# local test can print it and run it with a real Caddy (test/caddyfile.test.ts).
# caddyfile reads: APP_PORT, ISSUER, MAINTENANCE_FLAG, ADMIN_SOCKET, and the
# optional domain, acme_email, balancer_ranges (empty when unset).
# front_door_answer, the proxy step's check of the running Caddy, reads balancer_ranges.

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
  # Behind the balancer, port 80 answers it whatever name the request carries (its health checks carry an address).
  if [ -n "$domain" ] && [ -z "$balancer_ranges" ]; then
    echo "$domain {"
    [ "$ISSUER" != internal ] || echo "	tls internal"
  else
    echo ":80 {"
  fi
  # Browsers that saw the site once never try plain HTTP for it again (behind the balancer too: it
  # forwards HTTPS alone, and redirects port 80 itself). Deferred: set after the response comes back
  # from the app, so there is one such header whatever the app sends.
  if [ -n "$domain" ]; then
    cat <<'HSTS'
	header {
		Strict-Transport-Security "max-age=31536000"
		defer
	}
HSTS
  fi
  # Behind the balancer, port 80 answers its nodes alone (and this host itself: the proxy step's check): any other
  # peer's connection is closed unanswered, so that a host a stranger reaches (target ssh has no security group)
  # neither serves around the balancer nor tells what it is. In a handle written first: of the handle blocks, the
  # first that matches alone runs, and Caddy 2.6.2 orders a bare abort after them (`caddy adapt` shows it), so a
  # stranger would get the maintenance page.
  if [ -n "$balancer_ranges" ]; then
    cat <<OUTSIDE
	@outside not remote_ip $balancer_ranges 127.0.0.1/32 ::1/128
	handle @outside {
		abort
	}
OUTSIDE
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
UPSTREAM
  # Behind the balancer: the client's address is the one its nodes append to X-Forwarded-For. Caddy
  # 2.6.2 passes that header on from them with the node's address appended; from any other peer it
  # replaces the header with the peer's address (reverseproxy.go addForwardedHeaders, trusted_proxies
  # of reverse_proxy: 2.6 has no server-wide one).
  [ -z "$balancer_ranges" ] || echo "		trusted_proxies $balancer_ranges"
  echo "	}"
  # Behind the balancer: a GET or HEAD the app could not answer within the tries above (PM2 down, its workers gone)
  # is closed unanswered rather than answered 502, so that a balancer which sends what a host left unanswered to
  # another host (HAProxy: retry-on empty-response) does so. Other methods keep the 502: the app may have acted on
  # them, and they must not be sent twice. (handle_errors runs only for Caddy's own errors, never for the app's answers.)
  if [ -n "$balancer_ranges" ]; then
    cat <<'UNANSWERED'
	handle_errors {
		@retryable method GET HEAD
		handle @retryable {
			abort
		}
	}
UNANSWERED
  fi
  echo "}"
}

# front_door_answer URL HOST: how Caddy answered a GET of URL (Host: HOST): its HTTP status; or, behind the balancer,
# "none": the request taken and the connection closed unanswered, which is what Caddy does there while no app
# answers (handle_errors above), as on a new host, whose app the release step starts after the proxy step. Nothing,
# and status 1, when nothing took the request (or, without a balancer, nothing answered it).
front_door_answer() {
  local url=$1 host=$2 code status=0
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $host" "$url") || status=$?
  if [ "$code" != 000 ]; then
    echo "$code"
  elif [ -n "$balancer_ranges" ] && [ "$status" = 52 ]; then
    # curl's 52: "Empty reply from server", the connection closed with no answer.
    echo none
  else
    return 1
  fi
}
