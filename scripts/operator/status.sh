#!/usr/bin/env bash
# What `npm run cemetery -- status` asks the host, as root (sent on stdin to
# `sudo bash -s`): one KEY=VALUE line each, formatted on the workstation
# (scripts/operator/commands.ts). Reads only; changes nothing.
set -euo pipefail
APP_USER=$1 APP_HOME=$2 MAINTENANCE_FLAG=$3 NODE_BIN=$4 DOMAIN=${5:-}
link() { basename "$(readlink "$APP_HOME/$1" 2>/dev/null || echo none)"; }
echo "release=$(link current)"
echo "previous=$(link previous)"
if [ -e "$MAINTENANCE_FLAG" ]; then echo "maintenance=on"; else echo "maintenance=off"; fi
port=$(sed -n 's/^PORT=//p' "$APP_HOME/shared/app.env" 2>/dev/null || true)
echo "readyz=$(curl -s -m 5 -w ' %{http_code}' "http://127.0.0.1:${port:-3000}/readyz" || echo ' 000')"
# Behind a load balancer a host serves plain HTTP on port 80 alone, and the balancer holds the certificate.
if [ -n "$DOMAIN" ] && ss -Hltn 'sport = :443' | grep -q .; then
  end=$(openssl s_client -connect 127.0.0.1:443 -servername "$DOMAIN" </dev/null 2>/dev/null | openssl x509 -noout -enddate 2>/dev/null || true)
  echo "certificate=${end#notAfter=}"
fi
echo "disk=$(df -P / | awk 'NR == 2 { print $5, int($4 / 1024) }')"
# Only with PM2's unit up: `pm2` as the app user would otherwise start a daemon outside systemd.
if systemctl is-active --quiet "pm2-$APP_USER"; then
  echo "jlist=$(cd "$APP_HOME" && sudo -u "$APP_USER" -H env PATH="$NODE_BIN:/usr/local/bin:/usr/bin:/bin" pm2 jlist 2>/dev/null | tr -d '\n')"
else
  echo "jlist=down"
fi
