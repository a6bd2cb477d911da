#!/usr/bin/env bash
# Host step (databaseMode onHost with a data volume) (order: infra/host-steps.ts): the register on a volume of its
# own, which outlives the host (target aws: the EBS volume the program attaches; target ssh: dataVolumeDevice).
# The volume is mounted at DATA_MOUNT, and its postgresql/lib and postgresql/etc are bound onto /var/lib/postgresql
# and /etc/postgresql: Debian keeps a cluster's settings in /etc, so a new host that mounts the volume finds the
# cluster whole, and Debian's package starts it instead of making an empty one.
#   - a blank volume is formatted (ext4); one holding anything else is refused, never formatted;
#   - a host whose database is still on its root disk (from before the volume) has it moved onto the volume, with
#     PostgreSQL stopped meanwhile (the postgres step starts it); the old directories stay beside, renamed;
#   - on a new host, the postgres user is made with the ids the volume's files are owned by, before Debian's
#     package would make one with whatever ids are free.
source "$(dirname "$0")/lib.sh"
require DEVICE DATA_MOUNT
PG_DIRS=(/var/lib/postgresql /etc/postgresql)
# Where each of PG_DIRS lives on the volume.
on_volume() { echo "$DATA_MOUNT/postgresql/$([ "$1" = /var/lib/postgresql ] && echo lib || echo etc)"; }
has_files() { [ -n "$(find "$1" -mindepth 1 -maxdepth 1 ! -name lost+found -print -quit 2>/dev/null)" ]; }

# An attached EBS volume appears a little after its attachment; udev names it by the volume id.
for _ in $(seq 1 180); do
  [ -b "$DEVICE" ] && break
  sleep 1
done
[ -b "$DEVICE" ] || fail "no data volume at $DEVICE after 180 s (target aws: is the attachment there, and the instance type a Nitro one? target ssh: check dataVolumeDevice against ls /dev/disk/by-id)"
dev=$(readlink -f "$DEVICE")

probe=$(blkid -p -o export "$dev" 2>/dev/null || true)
fs_type=$(sed -n 's/^TYPE=//p' <<<"$probe")
if [ -z "$probe" ]; then
  mkfs.ext4 -q -L cemetery-data "$dev"
  log "formatted $DEVICE ($dev) as ext4: it was blank"
  probe=$(blkid -p -o export "$dev")
elif [ "$fs_type" != ext4 ]; then
  fail "$DEVICE ($dev) is not blank and holds no ext4 filesystem ($(tr '\n' ' ' <<<"$probe")): nothing was changed. Is dataVolumeDevice the right disk?"
fi
uuid=$(sed -n 's/^UUID=//p' <<<"$probe")

# The volume at boot: nofail, so a host whose volume is missing still boots (to be looked at); PostgreSQL then
# does not start on an empty directory (Debian's postgresql@.service has RequiresMountsFor its two directories).
write_file /etc/fstab 0644 root:root < <(
  grep -v -E "^[^#[:space:]]+[[:space:]]+($DATA_MOUNT|/var/lib/postgresql|/etc/postgresql)[[:space:]]" /etc/fstab || true
  echo "UUID=$uuid $DATA_MOUNT ext4 defaults,nofail,x-systemd.device-timeout=90s 0 2"
  for dir in "${PG_DIRS[@]}"; do echo "$(on_volume "$dir") $dir none bind,nofail,x-systemd.requires-mounts-for=$DATA_MOUNT 0 0"; done
)
[ "$WROTE" = 0 ] || systemctl daemon-reload

if ! mountpoint -q "$DATA_MOUNT"; then
  mkdir -p "$DATA_MOUNT"
  mount "$DATA_MOUNT"
  log "mounted $DEVICE on $DATA_MOUNT"
fi
mounted=$(findmnt -n -o SOURCE --mountpoint "$DATA_MOUNT")
[ "$(readlink -f "$mounted")" = "$dev" ] || fail "$DATA_MOUNT is $mounted, not the data volume $DEVICE ($dev): unmount it first"
chmod 0755 "$DATA_MOUNT"
# A volume made bigger (dataVolumeSizeGiB): ext4 grows while mounted.
blocks=$(df --output=size "$DATA_MOUNT" | tail -n 1)
resize2fs "$dev" >/dev/null 2>&1 || fail "could not grow the filesystem on $DEVICE onto the whole volume (resize2fs $dev)"
[ "$(df --output=size "$DATA_MOUNT" | tail -n 1)" = "$blocks" ] || log "grew the filesystem on $DEVICE to $(df -h --output=size "$DATA_MOUNT" | tail -n 1 | tr -d ' ')"

# The postgres user, before Debian's package makes one with whatever ids are free: with the ids of the volume's files
# (a new host mounting a used volume), else as Debian makes it. A host that has one must match the volume's files.
lib_on_volume=$(on_volume /var/lib/postgresql)
owner=$([ -d "$lib_on_volume" ] && stat -c '%u:%g' "$lib_on_volume" || echo 0:0)
if ! id postgres >/dev/null 2>&1; then
  if [ "$owner" != 0:0 ]; then
    uid=${owner%:*} gid=${owner#*:}
    getent group "$gid" >/dev/null && fail "the volume's PostgreSQL files belong to group id $gid, which this host gives to $(getent group "$gid" | cut -d: -f1)"
    getent passwd "$uid" >/dev/null && fail "the volume's PostgreSQL files belong to user id $uid, which this host gives to $(getent passwd "$uid" | cut -d: -f1)"
    groupadd --system --gid "$gid" postgres
    useradd --system --uid "$uid" --gid postgres --home-dir /var/lib/postgresql --no-create-home --shell /bin/bash --comment 'PostgreSQL administrator' postgres
  else
    getent group postgres >/dev/null || groupadd --system postgres
    useradd --system --gid postgres --home-dir /var/lib/postgresql --no-create-home --shell /bin/bash --comment 'PostgreSQL administrator' postgres
  fi
  log "made user postgres ($(id -u postgres):$(id -g postgres))"
elif [ "$owner" != 0:0 ] && [ "$owner" != "$(id -u postgres):$(id -g postgres)" ]; then
  fail "the volume's PostgreSQL files belong to $owner, and this host's postgres user is $(id -u postgres):$(id -g postgres): chown -R them on the volume, or pulumi up the host whose volume it is"
fi

for dir in "${PG_DIRS[@]}"; do
  target=$(on_volume "$dir")
  if mountpoint -q "$dir"; then
    [ "$(findmnt -n -o SOURCE --mountpoint "$dir")" = "${mounted}[${target#"$DATA_MOUNT"}]" ] ||
      fail "$dir is mounted from $(findmnt -n -o SOURCE --mountpoint "$dir"), not from the data volume's ${target#"$DATA_MOUNT/"}"
    continue
  fi
  if [ -d "$dir" ] && has_files "$dir"; then
    # A database from before the volume: onto the volume, unless the volume holds one too (which one is the register?).
    if [ -d "$target" ] && has_files "$target"; then
      fail "both $dir (this host's disk) and the data volume's ${target#"$DATA_MOUNT/"} hold files: keep one, move the other away, and pulumi up again"
    fi
    if systemctl is-active --quiet postgresql; then
      systemctl stop postgresql
      log "stopped PostgreSQL to move its files onto the data volume"
    fi
    mkdir -p "$target"
    cp -a "$dir/." "$target/"
    chown --reference="$dir" "$target"
    chmod --reference="$dir" "$target"
    mv "$dir" "$dir.before-data-volume"
    log "copied $dir onto the data volume; the original is $dir.before-data-volume (remove it once the register is checked)"
  fi
  [ -d "$target" ] || install -d -m 0755 -o postgres -g postgres "$target"
  mkdir -p "$dir"
  mount "$dir"
  log "mounted the data volume's ${target#"$DATA_MOUNT/"} on $dir"
done

log "the register's files are on $DEVICE ($(df -h --output=size "$DATA_MOUNT" | tail -n 1 | tr -d ' '), mounted on $DATA_MOUNT)"
