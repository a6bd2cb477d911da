#!/usr/bin/env bash
# A local Debian 13 VM to rehearse provisioning on (the `local` Pulumi stack,
# and npm run test:e2e): user `admin` with passwordless sudo and an SSH key,
# as on Debian's AWS AMI; SSH, the proxy's ports (80, 443) and the app port
# (which provisioning keeps on the VM's loopback: closed from outside)
# forwarded to 127.0.0.1 (VM_ADDRESS).
#
#   scripts/local-vm.sh build     build the base image once (mmdebstrap; cached)
#   scripts/local-vm.sh start     boot a fresh VM on a throwaway overlay
#   scripts/local-vm.sh snapshot FILE
#                                 keep the root disk as it is now in FILE, for VM_ROOT_FROM; the VM runs on
#   scripts/local-vm.sh ssh [cmd] a shell (or a command) on the VM as admin
#   scripts/local-vm.sh host-key  the VM's SSH host key, for sshHostKey
#   scripts/local-vm.sh stop      power it off
#   scripts/local-vm.sh discard   power it off at once (qemu killed), for a VM no one boots again
#   scripts/local-vm.sh status
#   scripts/local-vm.sh jit       qemu's translation buffer: how full, how many times flushed
#
# Needs (as root, for mmdebstrap and mkfs): mmdebstrap, qemu-system-x86,
# qemu-utils, e2fsprogs, openssh-client. Runs under software emulation (TCG).
# Like Debian's AMI it has iptables, the metadata guard's tool.
# Settings: VM_CACHE (base image, key; default ~/.cache/cemetery-backend/vm),
# VM_STATE (this VM's overlay, pid, console; default .vm), VM_SSH_PORT (2222),
# VM_HTTP_PORT (8080) and VM_HTTPS_PORT (8443) for the guest's 80 and 443,
# VM_APP_PORT (host port for the guest's 3000; default 3080), VM_CPUS (2),
# VM_MEMORY (2048), VM_TB_SIZE_MIB (2048, the most qemu 7.2 takes on x86-64: qemu's translation buffer), VM_DISK_CACHE (unsafe), DEBIAN_MIRROR (http://deb.debian.org/debian),
# VM_DATA_DISK_SIZE (4G: a blank second disk, /dev/disk/by-id/virtio-cemetery-data, the `local` stack's
# dataVolumeDevice), VM_DATA_DISK (a data disk file to attach instead, e.g. a lost VM's: it is used as it is),
# VM_ROOT_FROM (a root disk kept by `snapshot` to start from instead of the base image: a provisioned host's
# packages without provisioning them again; the VM makes its own SSH host keys at its first boot all the same),
# VM_ADDRESS (127.0.0.1: the loopback address its ports are forwarded on; another one, e.g. 127.0.0.2, lets
# VMs share the port numbers, as a fleet's hosts share sshPort), VM_HOSTNAME (cemetery-vm).
# This machine's own CAs (VM_LOCAL_CAS, /usr/local/share/ca-certificates: an intercepting proxy's) go into the image, for
# apt, curl and Node.js (NODE_EXTRA_CA_CERTS): a normal host does not need them, and provisioning never adds any.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${VM_CACHE:-$HOME/.cache/cemetery-backend/vm}
STATE=${VM_STATE:-$ROOT/.vm}
SSH_PORT=${VM_SSH_PORT:-2222}
APP_PORT=${VM_APP_PORT:-3080}
HTTP_PORT=${VM_HTTP_PORT:-8080}
HTTPS_PORT=${VM_HTTPS_PORT:-8443}
ADDRESS=${VM_ADDRESS:-127.0.0.1}
HOSTNAME_=${VM_HOSTNAME:-cemetery-vm}
CPUS=${VM_CPUS:-2}
MEMORY=${VM_MEMORY:-2048}
# unsafe: the guest's flushes are not passed on to the host disk (dpkg and initdb flush after every file).
# The overlay is thrown away with the VM; a crash of this machine loses the VM, nothing else.
DISK_CACHE=${VM_DISK_CACHE:-unsafe}
# qemu's translation buffer (MiB): its default, 1 GiB, filled and was flushed once in the first VM's 26 minutes (CI
# run 77), after which every process's code is translated again; the fleet's second VM ended at 1,008 of 1,024 MiB.
# qemu maps it lazily: only what it fills takes memory. A boot alone translates 290 MiB.
TB_SIZE_MIB=${VM_TB_SIZE_MIB:-2048}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DATA_DISK_SIZE=${VM_DATA_DISK_SIZE:-4G}
# The data disk's serial: the guest names it /dev/disk/by-id/virtio-<serial> (Pulumi.local.yaml, dataVolumeDevice).
DATA_DISK_SERIAL=cemetery-data
KEY="$CACHE/id_ed25519"
IMAGE_VERSION=7 # bump when the image recipe below changes
LOCAL_CAS=${VM_LOCAL_CAS:-/usr/local/share/ca-certificates}
# The image is this machine's: its name says which CAs it trusts, so another set builds another image.
# (`|| true`: a machine without any is the usual case, and pipefail would otherwise end the script here.)
BASE="$CACHE/debian-13-v$IMAGE_VERSION-$( (cat "$LOCAL_CAS"/*.crt 2>/dev/null || true) | sha256sum | cut -c1-8).raw"

die() { echo "local-vm: $*" >&2; exit 1; }
ssh_opts() {
  echo -i "$KEY" -p "$SSH_PORT" -o BatchMode=yes -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=5
}

build() {
  mkdir -p "$CACHE"
  [ -f "$KEY" ] || ssh-keygen -q -t ed25519 -N '' -C cemetery-local-vm -f "$KEY"
  local base=$BASE
  if [ -f "$base" ] && [ -f "$CACHE/vmlinuz" ] && [ -f "$CACHE/initrd.img" ]; then
    echo "local-vm: base image ready: $base"
    return
  fi
  for tool in mmdebstrap mkfs.ext4 qemu-img; do
    command -v "$tool" >/dev/null || die "$tool is missing (apt-get install mmdebstrap e2fsprogs qemu-utils)"
  done
  [ "$(id -u)" = 0 ] || die "building the image needs root (mmdebstrap, file ownership in the image)"
  local work
  work=$(mktemp -d)
  trap 'rm -rf "$work"' RETURN
  local pubkey
  pubkey=$(cat "$KEY.pub")
  # Each start passes an identity of its own on the kernel command line (also its machine id, and its name); a disk
  # that booted with another one (a copy, VM_ROOT_FROM) makes new SSH host keys, so no two VMs share one.
  cat >"$work/vm-identity" <<'SH'
#!/bin/sh
id=$(sed -n 's/.*cemetery\.identity=\([0-9a-f]*\).*/\1/p' /proc/cmdline)
if [ "$(cat /etc/ssh/cemetery-identity 2>/dev/null)" != "$id" ]; then
  rm -f /etc/ssh/ssh_host_*
  echo "$id" >/etc/ssh/cemetery-identity
fi
# ed25519 alone (the key sshHostKey pins): an RSA key is seconds of every first boot under emulation.
[ -f /etc/ssh/ssh_host_ed25519_key ] || ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
# The name given on the command line (systemd.hostname), resolvable as Debian's installer makes it: sudo looks it up.
sed -i "s/^127\.0\.1\.1 .*/127.0.1.1 $(hostname)/" /etc/hosts
SH
  mkdir "$work/ca"
  find "$LOCAL_CAS" -maxdepth 1 -name '*.crt' -exec cp {} "$work/ca/" \; 2>/dev/null || true
  echo "local-vm: building the Debian 13 rootfs (mmdebstrap, about a minute)"
  # The initramfs holds only what finds the root disk (virtio_blk, ext4): Debian's MODULES=most is 36 MB, which the
  # guest kernel took 7 s to unpack under emulation, then more to probe, at every boot.
  # shellcheck disable=SC2016 # mmdebstrap's hooks expand $1 (the rootfs) themselves
  mmdebstrap --quiet --variant=important \
    --include=systemd-sysv,openssh-server,linux-image-amd64,ca-certificates,curl,sudo,iproute2,dbus,procps,iptables \
    --customize-hook='echo cemetery-vm > "$1/etc/hostname" && printf "127.0.0.1 localhost\n127.0.1.1 cemetery-vm\n" > "$1/etc/hosts"' \
    --customize-hook='chroot "$1" useradd --create-home --shell /bin/bash --groups sudo admin' \
    --customize-hook='echo "admin ALL=(ALL) NOPASSWD:ALL" > "$1/etc/sudoers.d/admin" && chmod 0440 "$1/etc/sudoers.d/admin"' \
    --customize-hook="mkdir -p \"\$1/home/admin/.ssh\" && echo '$pubkey' > \"\$1/home/admin/.ssh/authorized_keys\" && chroot \"\$1\" chown -R admin:admin /home/admin/.ssh && chmod 700 \"\$1/home/admin/.ssh\"" \
    --customize-hook='printf "[Match]\nName=eth* en*\n\n[Network]\nDHCP=yes\n" > "$1/etc/systemd/network/10-dhcp.network"' \
    --customize-hook='chroot "$1" systemctl enable systemd-networkd' \
    --customize-hook='echo "nameserver 10.0.2.3" > "$1/etc/resolv.conf"' \
    --customize-hook='rm -f "$1"/etc/ssh/ssh_host_*' \
    --customize-hook="copy-in $work/vm-identity /usr/local/sbin" \
    --customize-hook='chmod 0755 "$1/usr/local/sbin/vm-identity"' \
    --customize-hook='printf "[Unit]\nDescription=SSH host keys of this VM\nBefore=ssh.service\n\n[Service]\nType=oneshot\nExecStart=/usr/local/sbin/vm-identity\n\n[Install]\nWantedBy=multi-user.target\n" > "$1/etc/systemd/system/ssh-hostkeys.service" && chroot "$1" systemctl enable ssh-hostkeys' \
    --customize-hook='echo "/dev/vda / ext4 defaults 0 1" > "$1/etc/fstab"' \
    --customize-hook="sync-in $work/ca /usr/local/share/ca-certificates" \
    --customize-hook='chroot "$1" update-ca-certificates >/dev/null 2>&1' \
    --customize-hook='echo NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt >> "$1/etc/environment"' \
    --customize-hook='echo "Defaults env_keep += \"NODE_EXTRA_CA_CERTS\"" > "$1/etc/sudoers.d/local-ca" && chmod 0440 "$1/etc/sudoers.d/local-ca"' \
    --customize-hook='sed -i "s/^MODULES=.*/MODULES=list/" "$1/etc/initramfs-tools/initramfs.conf" && printf "virtio_blk\next4\ncrc32c_generic\n" >> "$1/etc/initramfs-tools/modules" && chroot "$1" update-initramfs -u -k all >/dev/null 2>&1' \
    trixie "$work/rootfs.tar" "$MIRROR"
  mkdir "$work/rootfs"
  tar -xpf "$work/rootfs.tar" -C "$work/rootfs" --numeric-owner
  cp "$(find "$work/rootfs/boot" -name 'vmlinuz-*' | sort | tail -n 1)" "$CACHE/vmlinuz"
  cp "$(find "$work/rootfs/boot" -name 'initrd.img-*' | sort | tail -n 1)" "$CACHE/initrd.img"
  mkfs.ext4 -q -d "$work/rootfs" "$base.partial" 6G
  mv "$base.partial" "$base"
  echo "local-vm: base image ready: $base"
}

running() { [ -f "$STATE/qemu.pid" ] && kill -0 "$(cat "$STATE/qemu.pid")" 2>/dev/null; }

wait_for_ssh() {
  local deadline=$((SECONDS + ${1:-300}))
  # shellcheck disable=SC2046 # ssh_opts is a list of words
  until ssh $(ssh_opts) "admin@$ADDRESS" true 2>/dev/null; do
    running || die "the VM stopped while booting (see $STATE/console.log)"
    [ $SECONDS -lt $deadline ] || die "no SSH on $ADDRESS:$SSH_PORT after ${1:-300} s (see $STATE/console.log)"
    sleep 2
  done
}

start() {
  running && die "already running (pid $(cat "$STATE/qemu.pid")); scripts/local-vm.sh stop first"
  build
  command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 is missing (apt-get install qemu-system-x86)"
  mkdir -p "$STATE"
  chmod 0700 "$STATE"
  rm -f "$STATE"/run*.qcow2 "$STATE/console.log"
  # A throwaway overlay: the cached base image (or the kept disk) stays clean.
  if [ -n "${VM_ROOT_FROM:-}" ]; then
    [ -f "$VM_ROOT_FROM" ] || die "no root disk at $VM_ROOT_FROM (VM_ROOT_FROM)"
    qemu-img create -q -f qcow2 -F qcow2 -b "$(readlink -f "$VM_ROOT_FROM")" "$STATE/run.qcow2"
  else
    qemu-img create -q -f qcow2 -F raw -b "$BASE" "$STATE/run.qcow2"
  fi
  # The file the VM writes its root disk to (snapshot moves it on).
  echo "$STATE/run.qcow2" >"$STATE/root-top"
  # The register's disk, as an EBS data volume: raw, so a VM killed at once leaves it as a lost host leaves its
  # volume (whatever qemu wrote is in the file; a qcow2's own tables could be half-written). The root disk's PCI
  # slot comes first, so the root stays /dev/vda.
  local data=${VM_DATA_DISK:-$STATE/data.raw}
  if [ -z "${VM_DATA_DISK:-}" ]; then rm -f "$data" && truncate -s "$DATA_DISK_SIZE" "$data"; fi
  [ -f "$data" ] || die "no data disk at $data (VM_DATA_DISK)"
  local identity
  identity=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  # Software emulation: /dev/kvm on these machines does not work (see README). The monitor (QMP) is a socket in
  # the state directory, this user's alone.
  # norandmaps (the local VM's, not a host's: EC2 keeps ASLR): qemu's TCG keeps the code it translated by virtual
  # address, so with randomized mappings every new process translates its binary and libraries again. Without,
  # processes share those translations: apt-get install postgresql took 152 s against 290 s, 100 fork-execs 1.4 s
  # against 3.3-4.4 s (a bare guest, the same hour); Node.js starts gain little (V8 places its code itself).
  # panic=1: a guest kernel that panics boots again a second later instead of hanging. Under emulation a boot once
  # died of an int3 Oops in sched_clock_cpu as the kernel patched a static key (a reboot in a CI run here, the
  # console in the note of that session): the emulator's cross-modified code, not the host's. The console log keeps
  # every panic's trace (qemu appends across resets), and the VM tier logs how many there were.
  qemu-system-x86_64 -accel "tcg,tb-size=$TB_SIZE_MIB" -cpu max -smp "$CPUS" -m "$MEMORY" \
    -kernel "$CACHE/vmlinuz" -initrd "$CACHE/initrd.img" \
    -append "root=/dev/vda rw console=ttyS0 net.ifnames=0 norandmaps panic=1 cemetery.identity=$identity systemd.machine_id=$identity systemd.hostname=$HOSTNAME_" \
    -drive "file=$STATE/run.qcow2,if=none,id=root,format=qcow2,cache=$DISK_CACHE" -device virtio-blk-pci,drive=root,addr=0x4 \
    -drive "file=$data,if=none,id=data,format=raw,cache=$DISK_CACHE" -device "virtio-blk-pci,drive=data,addr=0x5,serial=$DATA_DISK_SERIAL" \
    -netdev "user,id=net0,hostfwd=tcp:$ADDRESS:$SSH_PORT-:22,hostfwd=tcp:$ADDRESS:$APP_PORT-:3000,hostfwd=tcp:$ADDRESS:$HTTP_PORT-:80,hostfwd=tcp:$ADDRESS:$HTTPS_PORT-:443" \
    -device virtio-net-pci,netdev=net0 \
    -display none -serial "file:$STATE/console.log" -qmp "unix:$STATE/qmp.sock,server=on,wait=off" \
    -daemonize -pidfile "$STATE/qemu.pid"
  local started=$SECONDS
  wait_for_ssh 300
  echo "local-vm: $HOSTNAME_ up in $((SECONDS - started)) s: ssh -p $SSH_PORT admin@$ADDRESS (key $KEY); ports 80, 443, 3000 -> $ADDRESS:$HTTP_PORT, $HTTPS_PORT, $APP_PORT"
}

# stop: the guest shuts down (up to 30 s), then qemu goes with the VM's disks (a snapshot's FILE stays).
# discard: qemu goes at once, as a power cut would, with the disks: for a VM no one boots again (the VM tier's
# VMs: a guest's shutdown is 10-12 s under emulation, and nothing of it is kept).
stop() {
  if ! running; then echo "local-vm: not running"; return; fi
  local pid
  pid=$(cat "$STATE/qemu.pid")
  if [ "${1:-}" != discard ]; then
    # shellcheck disable=SC2046
    ssh $(ssh_opts) "admin@$ADDRESS" sudo systemctl poweroff >/dev/null 2>&1 || true
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  fi
  kill "$pid" 2>/dev/null || true
  # Its open files (the disks) go only once qemu is gone.
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$STATE/qemu.pid" "$STATE"/run*.qcow2 "$STATE/root-top" "$STATE/qmp.sock" "$STATE/data.raw"
  if [ "${1:-}" = discard ]; then echo "local-vm: discarded"; else echo "local-vm: stopped"; fi
}

# qmp COMMAND...: QMP commands (JSON) to the running VM's monitor, in order; the first error answer fails.
qmp() {
  # shellcheck disable=SC2016 # the JavaScript below has template literals of its own
  node -e '
    const [sock, ...commands] = process.argv.slice(1);
    const queue = [{ execute: "qmp_capabilities" }, ...commands.map((c) => JSON.parse(c))];
    const socket = require("net").connect(sock);
    const next = () => { const c = queue.shift(); c ? socket.write(JSON.stringify(c) + "\n") : socket.end(); };
    let buffered = "";
    socket.on("data", (data) => {
      buffered += data;
      for (let i; (i = buffered.indexOf("\n")) >= 0; buffered = buffered.slice(i + 1)) {
        const answer = JSON.parse(buffered.slice(0, i));
        if (answer.error) { console.error(`local-vm: qemu refused: ${answer.error.desc}`); process.exit(1); }
        // A human-monitor-command answers with text: shown as it is.
        if (typeof answer.return === "string") process.stdout.write(answer.return);
        if (answer.QMP || "return" in answer) next();
      }
    });
    socket.on("error", (e) => { console.error(`local-vm: no QMP monitor: ${e.message}`); process.exit(1); });
  ' "$STATE/qmp.sock" "$@"
}

# The root disk as it is now, kept in FILE for VM_ROOT_FROM: the guest's writes are flushed, then qemu freezes the
# file the VM wrote to (an external snapshot) and the VM writes on to a new overlay. A start from FILE boots as after
# a power cut at that moment; the data disk is not part of it.
snapshot() {
  local dest=${1:-}
  [ -n "$dest" ] || die "usage: $0 snapshot FILE"
  running || die "not running"
  [ ! -e "$dest" ] || die "$dest exists"
  local frozen next
  frozen=$(cat "$STATE/root-top")
  next="$STATE/run.$(date +%s%N).qcow2"
  # shellcheck disable=SC2046
  ssh $(ssh_opts) "admin@$ADDRESS" sudo sync
  qmp "{\"execute\":\"blockdev-snapshot-sync\",\"arguments\":{\"device\":\"root\",\"snapshot-file\":\"$next\",\"format\":\"qcow2\"}}"
  echo "$next" >"$STATE/root-top"
  # The VM's own name for the frozen file goes with the VM (stop); FILE stays.
  ln "$frozen" "$dest" 2>/dev/null || cp --sparse=always "$frozen" "$dest"
  echo "local-vm: the root disk as it was is kept in $dest (VM_ROOT_FROM=$dest starts a VM from it)"
}

case "${1:-}" in
  build) build ;;
  start) start ;;
  stop) stop ;;
  discard) stop discard ;;
  snapshot) snapshot "${2:-}" ;;
  # How full qemu's translation buffer is and how often it was flushed (each flush: all code translated again).
  jit) running || die "not running"
    echo "$HOSTNAME_'s translation buffer:"
    qmp '{"execute":"human-monitor-command","arguments":{"command-line":"info jit"}}' | grep -E '^(gen code size|TB flush count)' ;;
  ssh) shift; running || die "not running"
    # shellcheck disable=SC2046
    exec ssh $(ssh_opts) -t "admin@$ADDRESS" "$@" ;;
  wait-ssh) wait_for_ssh "${2:-300}" ;;
  status) if running; then echo "running (pid $(cat "$STATE/qemu.pid")), ssh port $SSH_PORT, app port $APP_PORT"; else echo "stopped"; fi ;;
  key) echo "$KEY" ;;
  # The key the VM made at its first boot, read on loopback (the one place where
  # trusting the first answer is sound): the value for the stack's sshHostKey.
  host-key) running || die "not running"
    ssh-keyscan -t ed25519 -p "$SSH_PORT" "$ADDRESS" 2>/dev/null | cut -d' ' -f2- | grep . || die "no ed25519 host key on $ADDRESS:$SSH_PORT" ;;
  *) die "usage: $0 build|start|stop|discard|snapshot FILE|jit|ssh [command]|status|key|host-key" ;;
esac
