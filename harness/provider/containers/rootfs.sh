#!/usr/bin/env bash
# Makes the containers provider's node root file system: Debian bookworm from debootstrap with
# the real servers from Debian's packages installed in a chroot. Called by `succession image
# build` with the directory to fill and the packages to install; the harness imports the result.
# Any change to this file or to the package list changes the image's tag, so a machine rebuilds
# exactly when the recipe changed.
set -euo pipefail
root="$1"
shift
mirror="${SUCCESSION_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

step() { printf 'image: %s\n' "$*"; }

cleanup() {
  umount "$root/proc" 2>/dev/null || true
  rm -f "$root/usr/sbin/policy-rc.d"
}
trap cleanup EXIT

step "debootstrap bookworm from $mirror (about a minute and a half)"
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.debootstrap.log" 2>&1 || {
  tail -20 "$root.debootstrap.log" >&2
  exit 1
}
# Packages' maintainer scripts must not start their services in the chroot: the harness starts
# its own servers in each container.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod +x "$root/usr/sbin/policy-rc.d"
# The Java runtime's set-up reads /proc.
mount -t proc proc "$root/proc"
step "installing $* in the chroot"
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" \
  >"$root.install.log" 2>&1 || {
  tail -20 "$root.install.log" >&2
  exit 1
}
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
umount "$root/proc"
step "root file system ready ($(du -sxh "$root" | cut -f1))"
