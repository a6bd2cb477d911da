#!/usr/bin/env bash
# cemetery-s3-credentials (installed in /usr/local/sbin by scripts/host/backups.sh, target aws): the host's instance
# profile credentials for pgBackRest. Root reads them from the instance metadata service (IMDSv2; the metadata guard
# refuses every other user, the postgres user included, since the user data holds the host's SSH key) and writes them
# into pgBackRest's include directory, readable by root and postgres alone. AWS offers new credentials at least five
# minutes before the old ones expire (EC2 User Guide: "Retrieve security credentials from instance metadata"), so a
# timer runs this every two minutes; the file changes only when the credentials do.
# No credential, nor the metadata token, is ever an argument (ps shows arguments): headers go to curl on stdin,
# the JSON to jq on stdin, and the file is written with printf, a builtin.
set -euo pipefail
IMDS=${IMDS:-http://169.254.169.254}
CONF=${CONF:-/etc/pgbackrest/conf.d/cemetery-s3-credentials.conf}
CONF_GROUP=${CONF_GROUP:-postgres}

fail() {
  echo "cemetery-s3-credentials: $*" >&2
  exit 1
}

token=$(curl -fsS --max-time 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' "$IMDS/latest/api/token") ||
  fail "the metadata service ($IMDS) gave no token"
imds_get() { # imds_get PATH: the metadata service's answer, the token sent as a header read from stdin
  curl -fsS --max-time 5 -H @- "$IMDS/latest/meta-data/iam/security-credentials/$1" <<<"X-aws-ec2-metadata-token: $token"
}
roles=$(imds_get '') ||
  fail "the metadata service lists no role: the instance has no instance profile (the stack's BackupBucket gives it one: pulumi up)"
role=$(head -n 1 <<<"$roles")
[[ "$role" =~ ^[A-Za-z0-9+=,.@_-]{1,128}$ ]] || fail "the metadata service named no valid role"
json=$(imds_get "$role") || fail "the metadata service gave no credentials for role $role"

# One line per field, in this order, each checked: a partial answer never replaces working credentials.
fields=$(jq -r 'if .Code == "Success" then [.AccessKeyId, .SecretAccessKey, .Token, .Expiration] | map(. // "") | .[] else "code:" + (.Code // "none") end' <<<"$json") ||
  fail "the metadata service's answer for role $role is not JSON"
[[ "$fields" != code:* ]] || fail "the metadata service answered ${fields#code:} for role $role, not Success"
{ IFS= read -r key; IFS= read -r secret; IFS= read -r session; IFS= read -r expires; } <<<"$fields"
[[ "$key" =~ ^[A-Z0-9]{16,128}$ ]] || fail "role $role: no valid AccessKeyId in the answer"
[[ "$secret" =~ ^[^[:space:]]{16,128}$ ]] || fail "role $role: no valid SecretAccessKey in the answer"
[[ "$session" =~ ^[^[:space:]]{16,}$ ]] || fail "role $role: no session Token in the answer"
[[ "$expires" =~ ^[0-9T:.Z+-]{10,40}$ ]] || fail "role $role: no Expiration in the answer"

content=$(printf '# cemetery-backend: role %s, expires %s (cemetery-s3-credentials)\n[global]\nrepo1-s3-key=%s\nrepo1-s3-key-secret=%s\nrepo1-s3-token=%s' "$role" "$expires" "$key" "$secret" "$session")
if [ -f "$CONF" ] && [ "$(cat "$CONF")" = "$content" ]; then exit 0; fi
# Written whole, then renamed: pgBackRest, started for each WAL segment, never reads half a file.
mkdir -p "$(dirname "$CONF")"
tmp=$(mktemp "$CONF.XXXXXX")
trap 'rm -f "$tmp"' EXIT
chmod 0640 "$tmp"
chgrp "$CONF_GROUP" "$tmp"
printf '%s\n' "$content" >"$tmp"
mv -f "$tmp" "$CONF"
echo "cemetery-s3-credentials: role $role's credentials until $expires"
