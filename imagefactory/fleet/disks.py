"""Which storage holds a hypervisor's VM disks: files (storage.LocalFiles) for a local
hypervisor, libvirt pool volumes (pool.PoolVolumes) for a remote one. Both modules implement
storage.VmStorage; this choice lives apart from them so neither imports the other's user."""

from __future__ import annotations

from typing import Any

from imagefactory.fleet.hypervisor import FleetError, is_local
from imagefactory.fleet.model import Hypervisor, StorageMode
from imagefactory.fleet.pool import PoolVolumes
from imagefactory.fleet.storage import LocalFiles, VmStorage, resolved_mode


def storage_for(hv: Hypervisor, conn: Any) -> VmStorage:
    """Files written here for a local hypervisor, libvirt pool volumes for a remote one."""
    if resolved_mode(hv) is StorageMode.FILES:
        if not is_local(hv.uri):
            raise FleetError(
                f"hypervisor {hv.name}: storage: files needs a local URI, not "
                f"{hv.uri} (use storage: pool)"
            )
        return LocalFiles(hv)
    return PoolVolumes(hv, conn)
