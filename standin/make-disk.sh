#!/bin/bash
# Build a bootable BIOS disk from a root directory without mounting anything:
# FAT /boot with syslinux (mtools) + ext4 root populated with mkfs.ext4 -d, then qcow2.
# Usage: make-disk.sh ROOTFS_DIR OUT.qcow2 SIZE_MIB
set -euo pipefail
rootfs="$1" out="$2" size_mib="$3"
work="$(dirname "$out")"
boot_mib=64

kver="$(find "$rootfs/boot" -maxdepth 1 -name 'vmlinuz-*' -printf '%f\n' | sed 's/^vmlinuz-//' | sort -V | tail -n 1)"
[[ -n "$kver" ]] || { echo "no kernel in $rootfs/boot" >&2; exit 1; }
echo "Kernel ${kver}"

cat >"$work/syslinux.cfg" <<CFG
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  LINUX /vmlinuz
  INITRD /initrd.img
  APPEND root=LABEL=root ro console=tty0 console=ttyS0,115200n8
CFG

echo "Building FAT boot partition"
rm -f "$work/boot.img"
mkfs.vfat -n BOOT -C "$work/boot.img" $((boot_mib * 1024)) >/dev/null
mcopy -i "$work/boot.img" "$rootfs/boot/vmlinuz-$kver" ::/vmlinuz
mcopy -i "$work/boot.img" "$rootfs/boot/initrd.img-$kver" ::/initrd.img
mcopy -i "$work/boot.img" "$work/syslinux.cfg" ::/syslinux.cfg
syslinux --install "$work/boot.img"

echo "Building ext4 root partition from the tree"
root_mib=$((size_mib - boot_mib - 1))
rm -f "$work/root.img"
mkfs.ext4 -q -L root -E root_owner=0:0 -d "$rootfs" "$work/root.img" "${root_mib}M"

echo "Assembling MBR disk"
rm -f "$work/disk.raw"
truncate -s "${size_mib}M" "$work/disk.raw"
printf 'label: dos\nstart=1MiB, size=%dMiB, type=c, bootable\nstart=%dMiB, type=83\n' \
  "$boot_mib" $((boot_mib + 1)) | sfdisk -q "$work/disk.raw"
dd if=/usr/lib/SYSLINUX/mbr.bin of="$work/disk.raw" bs=440 count=1 conv=notrunc status=none
dd if="$work/boot.img" of="$work/disk.raw" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$work/root.img" of="$work/disk.raw" bs=1M seek=$((boot_mib + 1)) conv=notrunc,sparse status=none
qemu-img convert -O qcow2 "$work/disk.raw" "$out"
rm -f "$work/disk.raw" "$work/boot.img" "$work/root.img" "$work/syslinux.cfg"
