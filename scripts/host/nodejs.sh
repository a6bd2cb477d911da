#!/usr/bin/env bash
# Host step (order: infra/host-steps.ts): Node.js from the official linux-x64 tarball, installed only
# if its SHA-256 is the one pinned in the repository (infra/nodejs-releases.ts) or the stack
# (nodeTarballSha256): the mirror's own SHASUMS256.txt is not trusted, since whoever can change
# the tarball on the way can change that file too. Under /opt, on PATH for login shells and services.
# Keeps the live install and the one before it; older ones are removed.
source "$(dirname "$0")/lib.sh"
require NODE_VERSION NODE_MIRROR NODE_SHA256

name="node-v$NODE_VERSION-linux-x64"
dir="/opt/$name"
if [ "$("$dir/bin/node" --version 2>/dev/null || true)" != "v$NODE_VERSION" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  url="${NODE_MIRROR%/}/v$NODE_VERSION/$name.tar.gz"
  log "downloading $url"
  curl -fsSL --retry 3 -o "$tmp/$name.tar.gz" "$url" || fail "could not download $url"
  actual=$(sha256sum "$tmp/$name.tar.gz" | cut -d' ' -f1)
  [ "$actual" = "$NODE_SHA256" ] ||
    fail "refusing $url: its SHA-256 is $actual, the pinned one is $NODE_SHA256 (infra/nodejs-releases.ts, or the stack's nodeTarballSha256); nothing was installed"
  tar -xzf "$tmp/$name.tar.gz" -C "$tmp"
  rm -rf "$dir.partial"
  mv "$tmp/$name" "$dir.partial"
  mv -T "$dir.partial" "$dir"
  log "installed $("$dir/bin/node" --version) in $dir (SHA-256 $actual, as pinned)"
fi
before=$(readlink -f /opt/node || true)
link "$dir" /opt/node
# The install before the live one stays, for a quick way back (and for a daemon still on it).
if [ -n "$before" ] && [ "$before" != "$dir" ]; then link "$before" /opt/node.previous; fi
for bin in node npm npx; do link "/opt/node/bin/$bin" "/usr/local/bin/$bin"; done
write_file /etc/profile.d/nodejs.sh 0644 root:root <<'PROFILE'
# Node.js for login shells (installed by cemetery-backend provisioning)
case ":$PATH:" in *:/opt/node/bin:*) ;; *) PATH="/opt/node/bin:$PATH" ;; esac
export PATH
PROFILE
# Older installs go: not the live one, not the previous one, not the one the PM2 daemon runs on.
keep=("$dir" "$(readlink -f /opt/node.previous || true)")
for pid in $(pgrep -f 'PM2 v.*God Daemon' || true); do keep+=("$(dirname "$(dirname "$(readlink -f "/proc/$pid/exe")")")"); done
for old in /opt/node-v*-linux-x64; do
  [ -d "$old" ] || continue
  case " ${keep[*]} " in *" $old "*) continue ;; esac
  rm -rf "$old"
  log "removed $old"
done
log "node $(/usr/local/bin/node --version)"
