"""The hypervisor side: a fleet file of role VMs, placed, rendered to libvirt XML, applied."""
