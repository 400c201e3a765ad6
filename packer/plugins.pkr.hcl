# For Packer >= 1.7 only (1.6.6 bundles the qemu builder and rejects this block; the engine
# never passes this file to a build). On a current Packer build host run once:
#   packer init packer/plugins.pkr.hcl
# (Packer >= 1.10 no longer bundles qemu, so this is required there.)
packer {
  required_plugins {
    qemu = {
      version = ">= 1.1.0"
      source  = "github.com/hashicorp/qemu"
    }
  }
}
