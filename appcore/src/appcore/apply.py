"""The `apply` flow: check everything first, change nothing unless every check passed, then
bring the node to its role's state. Every change is skipped when already in place (idempotent)."""

import os
import re
import string
import time
from typing import Any, Callable, Dict, List, Optional

from appcore import VERSION, disks, galera, roundrobin, rrdata, units
from appcore.catalogue import Catalogue, Role, peer_values
from appcore.claim import Claim
from appcore.discovery import Discovery, discover, role_summary
from appcore.errors import AppcoreError, DiskError, RoleError, ServiceError
from appcore.hostfs import Host
from appcore.runner import Runner
from appcore.state import image_family, now, read_pin, write_pin

HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
    r"(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)
DISK_WAIT_SECONDS = 30


class Applier:
    """One run of `appcore apply` against a host (root prefix) with a command runner."""

    def __init__(
        self,
        host: Host,
        runner: Runner,
        catalogue: Catalogue,
        dry_run: bool = False,
        force: bool = False,
        disk_wait: int = DISK_WAIT_SECONDS,
    ) -> None:
        self.host = host
        self.runner = runner
        self.catalogue = catalogue
        self.dry_run = dry_run
        self.force = force
        self.disk_wait = disk_wait
        self.changes: List[str] = []
        self.claims: Dict[str, Claim] = {}  # serial -> disk held from its probe to mkfs
        self.state: Dict[str, Any] = {
            "version": VERSION,
            "started": now(),
            "dry_run": dry_run,
            "status": "failed",
            "changes": self.changes,
        }

    def change(self, what: str, action: Callable[..., Any], *args: Any) -> None:
        """Record a change; run action(*args) unless this is a dry run."""
        if self.dry_run:
            self.changes.append("would " + what)
            return
        action(*args)
        self.changes.append(what)

    def systemctl(self, *args: str) -> None:
        self.runner.run(["systemctl"] + list(args))

    def is_(self, verb: str, unit: str) -> bool:
        return self.runner.run(["systemctl", verb, "--quiet", unit], check=False).returncode == 0

    def queued(self, unit: str) -> bool:
        """A start job is already waiting (at boot: enabled services ordered after us)."""
        jobs = self.runner.run(["systemctl", "list-jobs", "--no-legend", "--plain"], check=False)
        return any(line.split()[1:2] == [unit] for line in jobs.stdout.splitlines())

    def unit_state(self, unit: str) -> str:
        """'queued', 'active' or 'inactive'. The job list is read before the unit state: a
        boot job can finish between the two reads, and in this order that shows as active,
        never as a unit nobody started (which would be recorded as our change)."""
        if self.queued(unit):
            return "queued"
        return "active" if self.is_("is-active", unit) else "inactive"

    # --- checks: nothing below changes the machine -------------------------------------------
    def resolve_role(self) -> Role:
        family = image_family(self.host, self.catalogue)
        self.state["family"] = family
        found: Optional[Discovery] = None
        try:
            found = discover(self.host, self.runner, self.catalogue)
        finally:
            self.state["findings"] = role_summary(found.findings if found else None)
        role = self.catalogue.roles[found.role]
        self.state.update(
            role=role.id, source=found.source, source_detail=found.detail, notes=found.notes
        )
        self.discovery = found
        if role.family != family:
            raise RoleError(
                f"role {role.id} belongs to the {role.family} family but this image is "
                f"{family}: refused"
            )
        return role

    def check_pin(self, role: Role) -> Optional[Role]:
        """The first role is pinned; a different one needs --force (and blank disks, see below)."""
        pin = read_pin(self.host)
        self.state["pinned_role"] = pin["role"] if pin else None
        if pin is None or pin["role"] == role.id:
            return None
        if not self.force:
            raise RoleError(
                "this VM is pinned to role {} (since {}, from {}); refusing role {} "
                "from {}. To re-purpose a VM with blank data disks run: appcore apply "
                "--force-role-change".format(
                    pin["role"],
                    pin.get("pinned_at"),
                    pin.get("source"),
                    role.id,
                    self.state["source"],
                )
            )
        return self.catalogue.roles.get(pin["role"])

    def params(self, role: Role) -> Dict[str, str]:
        values = {}
        for key, default in sorted(role.params.items()):
            value = self.discovery.params.get(key, default)
            if value is None:
                raise RoleError(f"role {role.id} needs parameter {key!r}: set appcore:{key}=VALUE")
            values[key] = value
        return values

    def check_services(self, role: Role) -> None:
        missing = [s for s in role.services if not units.unit_installed(self.host, s)]
        if missing:
            raise ServiceError(
                "role {} needs {} but this image does not contain {} (no unit "
                "file in {}); install the role's software in the image".format(
                    role.id,
                    ", ".join(role.services),
                    ", ".join(missing),
                    ", ".join(units.UNIT_SEARCH[:1] + units.UNIT_SEARCH[-2:]),
                )
            )

    def check_disks(self, role: Role, old: Optional[Role]) -> List[Dict[str, Any]]:
        if role.disks:
            self.runner.run(["udevadm", "settle", f"--timeout={self.disk_wait}"], check=False)
        plans = []
        for serial in role.disks:
            disk = self.catalogue.disks[serial]
            device = self.host.path(units.by_id(serial))
            deadline = time.time() + self.disk_wait
            while not os.path.exists(device) and time.time() < deadline:
                time.sleep(1)
            if not os.path.exists(device):
                raise DiskError(
                    f"data disk {serial} not found at {units.by_id(serial)}: attach it with "
                    f"<serial>{serial}</serial> "
                    f"(virtio, <= 20 bytes); role {role.id} stays unconfigured"
                )
            mount = units.mount_unit_name(disk.mount)
            if not self.dry_run and self.queued(mount):
                # At boot a role service's RequiresMountsFor= queued this disk's mount, gated
                # by appcore-disk@ (our own check): that job goes first. The probe's exclusive
                # claim would fail it with EBUSY, and the role service with it. It is systemd's
                # start, not a change of ours; a failed mount leaves the verdict to the probe.
                self.runner.run(["systemctl", "start", mount], check=False)
            claim = Claim(device, f"data disk {serial} ({units.by_id(serial)})").take()
            self.claims[serial] = claim  # run() releases every claim still held at its end
            decision = disks.decide(disks.probe(device, self.runner), disk.label, disk.fstypes)
            if decision.action != disks.FORMAT or self.dry_run:
                claim.release()  # held on to mkfs only: a mount needs the device
            plan = {
                "serial": serial,
                "device": units.by_id(serial),
                "mount": disk.mount,
                "decision": decision.action,
                "reason": decision.reason,
                "fstype": decision.fstype,
            }
            plans.append(plan)
            if decision.action == disks.REFUSE:
                raise DiskError(
                    f"data disk {serial} ({units.by_id(serial)}) {decision.reason}: not touched; "
                    f"role {role.id} stays unconfigured"
                )
            if decision.action == disks.FORMAT:
                if not self.dry_run:
                    claim.require_exclusive()
                plan["fstype"] = disks.choose_mkfs(disk.fstypes, self.runner) or ""
                if not plan["fstype"]:
                    raise DiskError(f"no mkfs tool for any of {disk.fstypes} found")
            elif old is not None:
                raise RoleError(
                    f"role change {old.id} -> {role.id} refused: data disk {serial} is not "
                    f"blank ({decision.reason})"
                )
        return plans

    # --- changes ------------------------------------------------------------------------------
    def write(self, path: str, text: str, mode: int = 0o644) -> bool:
        if self.host.up_to_date(path, text, mode):
            return False
        self.change("write " + path, self.host.write_text, path, text, mode)
        return True

    def prepare_disks(self, plans: List[Dict[str, Any]]) -> bool:
        changed = False
        for plan in plans:
            disk = self.catalogue.disks[plan["serial"]]
            device = self.host.path(plan["device"])
            if plan["decision"] == disks.FORMAT:
                self.change(
                    "format {} as {} (label {})".format(plan["device"], plan["fstype"], disk.label),
                    self.claims[plan["serial"]].format,
                    disk.label,
                    disk.fstypes,
                    plan["fstype"],
                    self.runner,
                )
                if not self.dry_run:  # the fresh filesystem must now pass the mount-time check
                    disks.check_ours(device, disk.label, disk.fstypes, self.runner)
            unit = units.mount_unit_name(disk.mount)
            changed |= self.write(
                units.UNIT_DIR + "/" + unit, units.render_mount_unit(disk, plan["fstype"])
            )
        return changed

    def mount_disks(self, plans: List[Dict[str, Any]]) -> None:
        for plan in plans:
            disk = self.catalogue.disks[plan["serial"]]
            if not os.path.isdir(self.host.path(disk.mount)):
                self.change("create mount point " + disk.mount, self.host.makedirs, disk.mount)
            unit = units.mount_unit_name(disk.mount)
            state = self.unit_state(unit)
            if state == "queued" and not self.dry_run:
                # At boot a role service's RequiresMountsFor= already queued the mount:
                # wait for that job (the role config goes onto this disk), but it is
                # systemd's start, not a change of ours.
                self.systemctl("start", unit)
            elif state == "inactive":
                self.change("start " + unit, self.systemctl, "start", unit)
            self.selinux(disk.mount, disk.selinux)

    def selinux(self, mount: str, rules: List[Dict[str, str]]) -> None:
        if not self.host.exists("/sys/fs/selinux/enforce"):
            self.state["selinux"] = "not enabled: contexts not set"
            return
        self.state["selinux"] = "enabled"
        local = self.runner.run(["semanage", "fcontext", "-l", "-C"]).stdout
        for rule in rules:
            present = [ln for ln in local.splitlines() if ln.split()[:1] == [rule["spec"]]]
            if any(":{}:".format(rule["type"]) in ln for ln in present):
                continue
            verb = "-m" if present else "-a"
            self.change(
                "semanage fcontext {} -t {} {}".format(verb, rule["type"], rule["spec"]),
                self.runner.run,
                ["semanage", "fcontext", verb, "-t", rule["type"], rule["spec"]],
            )
        if not self.dry_run:
            out = self.runner.run(["restorecon", "-R", "-v", self.host.path(mount)]).stdout
            if out.strip():
                self.changes.append(
                    f"restorecon relabelled {len(out.strip().splitlines())} path(s) under {mount}"
                )

    def render(self, role: Role, params: Dict[str, str], hostname: str) -> None:
        values = dict(params)
        values.update(
            role=role.id,
            role_lower=role.id.lower(),
            family=role.family,
            hostname=hostname,
            config_dir=role.config_dir,
            version=VERSION,
            data_dir=self.catalogue.disks[role.disks[0]].mount if role.disks else "",
        )
        if "peers" in params:
            values.update(peer_values(params["peers"]))
        for dest, name in sorted(role.templates.items()):
            text = string.Template(self.catalogue.template_text(name)).substitute(values)
            # The role's service runs as its own user (mysql, scylla, ...) and must read it;
            # the templates hold no secret (images never do).
            self.write(role.config_dir + "/" + dest, text, 0o644)
        if role.round_robin is not None and not self.host.exists(roundrobin.mode_path(role)):
            self.write(roundrobin.mode_path(role), roundrobin.mode_text(True))  # never rewritten

    def set_hostname(self, wanted: Optional[str]) -> str:
        current = (
            self.host.read_text("/etc/hostname").strip()
            if self.host.exists("/etc/hostname")
            else ""
        )
        if not wanted:
            return current
        if wanted != current:
            self.change(
                "set hostname " + wanted,
                self.runner.run,
                ["hostnamectl", "set-hostname", wanted],
            )
        self.name_in_hosts(wanted)
        return wanted

    def name_in_hosts(self, hostname: str) -> None:
        """Debian's 127.0.1.1 line in /etc/hosts names the machine: kept to the hostname, or
        every lookup of it (sudo does one per command) waits for DNS. Without such a line
        (OL8) the file is left alone."""
        if not self.host.exists("/etc/hosts"):
            return
        lines = self.host.read_text("/etc/hosts").splitlines()
        wanted = [
            f"127.0.1.1 {hostname}" if ln.split()[:1] == ["127.0.1.1"] else ln for ln in lines
        ]
        if wanted != lines:
            self.write("/etc/hosts", "\n".join(wanted) + "\n")

    def start_services(self, role: Role) -> None:
        if role.galera is not None:
            self.hold_for_the_cluster(role)
            return
        if role.round_robin is not None and not rrdata.has_database(self.host, role):
            where = role.round_robin["datadir"]
            self.change(
                "prepare the data directory " + where, rrdata.prepare, self.host, self.runner, role
            )
        for service in role.services:
            if not self.is_("is-enabled", service):
                self.change("enable " + service, self.systemctl, "enable", service)
            if self.unit_state(service) == "inactive":
                # --no-block: the service is ordered After=appcore.service (our drop-in), so
                # waiting for it here, inside appcore.service, would deadlock the boot.
                self.change("start " + service, self.systemctl, "start", "--no-block", service)

    def hold_for_the_cluster(self, role: Role) -> None:
        """A Galera member's database starts only as the fleet decides (bootstrap one member,
        the others join): never enabled for boot, where each member would wait for a Primary
        component that nobody forms. Its position goes into the state for the fleet."""
        for service in role.services:
            if self.is_("is-enabled", service):
                self.change("disable " + service, self.systemctl, "disable", service)
        if self.dry_run:
            return
        member = galera.member_of(self.runner, role.galera or {}, self.host.path)
        try:
            self.state["galera"] = member.locked_report()
        except AppcoreError as exc:
            self.state["galera"] = {"error": str(exc)}

    def retire(self, old: Role, role: Role) -> None:
        """Forced role change: stop the old role's services and remove the files we wrote."""
        for service in old.services:
            if service not in role.services and units.unit_installed(self.host, service):
                self.change("disable --now " + service, self.systemctl, "disable", "--now", service)
            if service not in role.services and self.host.exists(units.dropin_path(service)):
                self.change(
                    "remove " + units.dropin_path(service),
                    self.host.remove,
                    units.dropin_path(service),
                )

    def run(self) -> Dict[str, Any]:
        try:
            return self.configure()
        finally:
            for claim in self.claims.values():
                claim.release()

    def configure(self) -> Dict[str, Any]:
        role = self.resolve_role()
        old = self.check_pin(role)
        params = self.params(role)
        wanted_host = self.discovery.params.get("hostname")
        if wanted_host is not None and not HOSTNAME.match(wanted_host):
            raise RoleError(
                f"hostname {wanted_host!r} from the role channels is not a valid lower-case "
                "DNS name"
            )
        self.check_services(role)
        plans = self.check_disks(role, old)
        self.state["disks"] = plans
        # Every check passed: from here on the machine is changed.
        if old is not None:
            self.retire(old, role)
        reload = self.prepare_disks(plans)
        mounts = [self.catalogue.disks[s].mount for s in role.disks]
        for service in role.services:
            reload |= self.write(units.dropin_path(service), units.render_dropin(role, mounts))
        if reload:
            self.change("systemctl daemon-reload", self.systemctl, "daemon-reload")
        self.mount_disks(plans)
        hostname = self.set_hostname(wanted_host)
        self.render(role, params, hostname)
        if "peers" in params:  # readiness: every member of the cluster is in it
            peers = [p for p in params["peers"].split(",") if p]
            self.state.update(members=len(peers), peers=peers, ip=params.get("ip") or "")
        self.start_services(role)
        if old is not None or read_pin(self.host) is None:
            pin = {
                "role": role.id,
                "source": self.state["source"],
                "pinned_at": now(),
                "family": role.family,
            }
            self.change("pin role " + role.id, write_pin, self.host, pin)
        self.state.update(
            status="dry-run" if self.dry_run else "configured",
            hostname=hostname,
            services=role.services,
            finished=now(),
        )
        return self.state
