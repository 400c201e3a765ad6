# Install layer: boot the OL8 DVD, feed it the rendered kickstart over Packer's HTTP server,
# and keep the installed disk as the root layer of both families. The engine renders every
# variable (imagefactory.sources.install); the only logic here is the BIOS/UEFI switch on
# uefi_firmware. Packer 1.6.6 and current Packer.
packer {
  required_version = ">= 1.6.6"
}

variable "iso_path" {
  type        = string
  description = "The DVD, already downloaded and verified by the engine."
}
variable "iso_sha256" { type = string }
variable "http_dir" {
  type        = string
  description = "Directory holding the rendered kickstart (ol8.ks)."
}
variable "output_dir" { type = string }
variable "vm_name" { type = string }
variable "accelerator" { type = string }
variable "cpus" { type = number }
variable "memory_mib" { type = number }
variable "disk_size_mib" { type = number }
variable "ssh_username" { type = string }
variable "ssh_private_key_file" { type = string }
variable "ssh_timeout" { type = string }
variable "serial_log" { type = string }
variable "uefi_firmware" {
  type        = string
  description = "UEFI: the OVMF image QEMU boots with -bios. BIOS (SeaBIOS, QEMU's default): \"\"."
}

locals {
  uefi = var.uefi_firmware != ""
  ks   = "inst.text inst.ks=http://{{ .HTTPIP }}:{{ .HTTPPort }}/ol8.ks"
  # Packer 1.6.6's qemu builder has no firmware option, so the firmware is a QEMU argument.
  firmware_args = local.uefi ? [["-bios", var.uefi_firmware]] : []
}

source "qemu" "install" {
  iso_url        = var.iso_path
  iso_checksum   = "sha256:${var.iso_sha256}"
  http_directory = var.http_dir
  # Packer serves the kickstart (it holds the GRUB password hash) on every interface unless
  # told otherwise. The guest reaches it as {{ .HTTPIP }} (10.0.2.2), QEMU's user-network
  # alias for the host's loopback.
  http_bind_address  = "127.0.0.1"
  disk_size          = "${var.disk_size_mib}M"
  format             = "qcow2"
  disk_interface     = "virtio"
  disk_discard       = "unmap"
  disk_detect_zeroes = "unmap"
  disk_cache         = "unsafe"
  skip_compaction    = true
  accelerator        = var.accelerator
  headless           = true
  cpus               = var.cpus
  memory             = var.memory_mib
  net_device         = "virtio-net"
  output_directory   = var.output_dir
  vm_name            = var.vm_name
  # Both menus default to "Test this media & install"; <up> selects "Install" instead.
  # BIOS isolinux: <tab> opens the kernel command line; add the kickstart, boot.
  # UEFI GRUB (slower to appear under OVMF): e edits the entry; two lines down (past setparams
  # and a blank line) is the linuxefi line; add the kickstart at its end, boot with Ctrl-x.
  boot_wait = local.uefi ? "30s" : "10s"
  boot_command = local.uefi ? [
    "<up><wait>e<wait><down><down><end> ${local.ks}<wait><leftCtrlOn>x<leftCtrlOff><wait>",
    ] : [
    "<up><wait><tab> ${local.ks}<enter><wait>",
  ]
  communicator         = "ssh"
  ssh_username         = var.ssh_username
  ssh_private_key_file = var.ssh_private_key_file
  ssh_timeout          = var.ssh_timeout
  shutdown_command     = "sudo systemctl poweroff"
  shutdown_timeout     = "5m"
  qemuargs = concat([
    ["-netdev", "user,id=user.0,hostfwd=tcp:127.0.0.1:{{ .SSHHostPort }}-:22"],
    ["-serial", "file:${var.serial_log}"],
    # A virtio-rng: under TCG a boot can stall on getrandom for want of entropy.
    ["-object", "rng-random,id=rng0,filename=/dev/urandom"],
    ["-device", "virtio-rng-pci,rng=rng0"],
  ], local.firmware_args)
}

build {
  sources = ["source.qemu.install"]

  provisioner "shell" {
    inline = ["cat /etc/oracle-release", "sudo rpm -qa | wc -l"]
  }
}
