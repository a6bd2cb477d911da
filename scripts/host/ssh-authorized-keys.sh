#!/usr/bin/env bash
# Host step (order: infra/host-steps.ts): the SSH user's authorized_keys holds
# exactly the stack's deploy key, PUBLIC_KEY, plus NEXT_PUBLIC_KEY while a key
# rotation is under way (README: rotating the deploy key). Public keys only:
# nothing secret passes through here.
source "$(dirname "$0")/lib.sh"
require SSH_USER PUBLIC_KEY

home=$(getent passwd "$SSH_USER" | cut -d: -f6) || fail "no user $SSH_USER"
next_key=${NEXT_PUBLIC_KEY:-} # optional argument (arguments are read-only)
for key in "$PUBLIC_KEY" ${next_key:+"$next_key"}; do
  # OpenSSH's own parser decides (the stack config checked the same keys with ssh2's).
  ssh-keygen -l -f - <<<"$key" >/dev/null 2>&1 || fail "not an OpenSSH public key: '${key:0:40}...'"
done
install -d -m 0700 -o "$SSH_USER" -g "$SSH_USER" "$home/.ssh"
{
  echo "$PUBLIC_KEY"
  if [ -n "$next_key" ]; then echo "$next_key"; fi
} | write_file "$home/.ssh/authorized_keys" 0600 "$SSH_USER:$SSH_USER"
log "$SSH_USER authorizes $(wc -l <"$home/.ssh/authorized_keys") deploy key(s)"
