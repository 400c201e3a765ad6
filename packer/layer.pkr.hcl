# One layer of a family: boot the parent layer's qcow2, upload the layer's files, run its
# scripts in order, shut down. The engine (imagefactory.guest.packer) renders every variable into a
# JSON var file; the only logic here is the BIOS/UEFI switch on uefi_firmware, as in
# install-ol8.pkr.hcl. Works on Packer 1.6.6 (bundled qemu builder) and on current Packer with
# the qemu plugin (see packer/plugins.pkr.hcl.example and README.md).
packer {
  required_version = ">= 1.6.6"
}

variable "parent_image" {
  type        = string
  description = "Path of the parent layer's qcow2 (the new layer is an overlay on it)."
}
variable "parent_sha256" {
  type        = string
  description = "sha256 of the parent qcow2 as recorded in the cache; Packer re-checks it."
}
variable "output_dir" { type = string }
variable "vm_name" { type = string }
variable "accelerator" {
  type        = string
  description = "kvm or tcg, chosen by the engine after probing (never left to auto-detect)."
}
variable "cpus" { type = number }
variable "memory_mib" { type = number }
variable "disk_size_mib" { type = number }
variable "ssh_username" { type = string }
variable "ssh_private_key_file" { type = string }
variable "ssh_timeout" { type = string }
variable "serial_log" { type = string }
variable "files_dir" {
  type        = string
  description = "Staged layer inputs (scripts and files), uploaded to files_target."
}
variable "files_target" { type = string }
variable "scripts" {
  type        = list(string)
  description = "Provisioner scripts in order (NN-verb-noun.sh), run as root with env_vars."
}
variable "env_vars" {
  type        = list(string)
  description = "IF_* inputs of the layer, as NAME=value."
}
variable "shutdown_command" { type = string }
variable "reboot_inline" {
  type        = list(string)
  description = "Layers with reboot = true: record /etc, then reboot. Otherwise [\"true\"]."
}
variable "after_reboot_inline" {
  type        = list(string)
  description = "Layers with reboot = true: re-run the scripts, compare /etc. Otherwise [\"true\"]."
}
variable "after_reboot_pause" {
  type        = string
  description = "Wait before reconnecting, so the old system is gone (\"0s\" without a reboot)."
}
variable "uefi_firmware" {
  type        = string
  description = "As the root layer was installed. UEFI: the OVMF image for -bios. BIOS: \"\"."
}

locals {
  # Packer 1.6.6's qemu builder has no firmware option, so the firmware is a QEMU argument.
  firmware_args = var.uefi_firmware != "" ? [["-bios", var.uefi_firmware]] : []
}

source "qemu" "layer" {
  iso_url          = var.parent_image
  iso_checksum     = "sha256:${var.parent_sha256}"
  disk_image       = true
  use_backing_file = true
  # qemu-img >= 6.1 refuses a backing file without its format; Packer 1.6.6 does not pass one.
  qemu_img_args {
    create = ["-F", "qcow2"]
  }
  skip_resize_disk     = true
  disk_size            = "${var.disk_size_mib}M"
  format               = "qcow2"
  disk_interface       = "virtio"
  disk_discard         = "unmap"
  disk_detect_zeroes   = "unmap"
  disk_cache           = "unsafe"
  accelerator          = var.accelerator
  headless             = true
  cpus                 = var.cpus
  memory               = var.memory_mib
  net_device           = "virtio-net"
  output_directory     = var.output_dir
  vm_name              = var.vm_name
  boot_wait            = "1s"
  communicator         = "ssh"
  ssh_username         = var.ssh_username
  ssh_private_key_file = var.ssh_private_key_file
  ssh_timeout          = var.ssh_timeout
  shutdown_command     = var.shutdown_command
  shutdown_timeout     = "5m"
  qemuargs = concat([
    # Same netdev id as Packer's default, so it replaces it: the SSH forward listens on
    # loopback only (the default binds every interface).
    ["-netdev", "user,id=user.0,hostfwd=tcp:127.0.0.1:{{ .SSHHostPort }}-:22"],
    ["-serial", "file:${var.serial_log}"],
    # A virtio-rng: under TCG a boot can stall on getrandom for want of entropy.
    ["-object", "rng-random,id=rng0,filename=/dev/urandom"],
    ["-device", "virtio-rng-pci,rng=rng0"],
  ], local.firmware_args)
}

build {
  sources = ["source.qemu.layer"]

  # The file provisioner needs the target directory to exist to copy a directory's contents.
  provisioner "shell" {
    inline = ["mkdir -p ${var.files_target}"]
  }

  provisioner "file" {
    source      = "${var.files_dir}/"
    destination = var.files_target
  }

  provisioner "shell" {
    scripts          = var.scripts
    environment_vars = var.env_vars
    execute_command  = "chmod +x '{{ .Path }}'; sudo {{ .Vars }} /bin/bash '{{ .Path }}'"
    remote_folder    = "/var/tmp"
  }

  # Reboot and idempotence proof (layers with `reboot: true`; both are no-ops otherwise).
  provisioner "shell" {
    inline            = var.reboot_inline
    environment_vars  = var.env_vars
    execute_command   = "chmod +x '{{ .Path }}'; sudo {{ .Vars }} /bin/bash '{{ .Path }}'"
    remote_folder     = "/var/tmp"
    expect_disconnect = true
  }

  provisioner "shell" {
    pause_before        = var.after_reboot_pause
    start_retry_timeout = var.ssh_timeout
    inline              = var.after_reboot_inline
    environment_vars    = var.env_vars
    execute_command     = "chmod +x '{{ .Path }}'; sudo {{ .Vars }} /bin/bash '{{ .Path }}'"
    remote_folder       = "/var/tmp"
  }
}
