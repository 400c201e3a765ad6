"""Data-disk safety: a disk is formatted only when provably blank and mounted only when it is
provably ours (expected filesystem and label, nothing else on it). Anything else is refused.

Why both wipefs and blkid: `blkid -p -s TYPE` is empty on a GPT-only disk, so a TYPE-only check
would format it; wipefs lists every signature (gpt, PMBR, LVM2_member, LUKS, raid...).
"""

from typing import Dict, List, NamedTuple, Optional

from appcore.errors import CommandError, DiskError
from appcore.runner import Runner

HEAD_BYTES = 1024 * 1024
FORMAT, MOUNT, REFUSE = "format", "mount", "refuse"


class Probe(NamedTuple):
    device: str
    blkid: Dict[str, str]
    signatures: List[str]
    head_blank: bool


class Decision(NamedTuple):
    action: str
    fstype: str
    reason: str


def probe(device: str, runner: Runner) -> Probe:
    """Read-only low-level probe of a block device or image file."""
    result = runner.run(["blkid", "-p", "-o", "export", device], check=False)
    if result.returncode not in (0, 2):  # 2 means "nothing found"
        raise DiskError(
            f"blkid -p failed on {device} (exit {result.returncode}): {result.stderr.strip()}"
        )
    fields = {}
    for line in result.stdout.splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            fields[key] = value
    sigs = runner.run(
        ["wipefs", "--no-act", "--noheadings", "--output", "TYPE", device], check=False
    )
    if sigs.returncode != 0:
        raise DiskError(
            f"wipefs --no-act failed on {device} (exit {sigs.returncode}): {sigs.stderr.strip()}"
        )
    signatures = [s.strip() for s in sigs.stdout.splitlines() if s.strip()]
    with open(device, "rb") as fh:
        head = fh.read(HEAD_BYTES)
    return Probe(device, fields, signatures, head.count(0) == len(head))


def decide(found: Probe, label: str, fstypes: List[str]) -> Decision:
    """The whole safety rule, as a pure function of the probe."""
    fstype = found.blkid.get("TYPE", "")
    pttype = found.blkid.get("PTTYPE", "")
    if pttype:
        return Decision(
            REFUSE,
            "",
            f"carries a {pttype} partition table (signatures: {found.signatures}); App-Core "
            "never touches partitioned disks",
        )
    if fstype:
        other = [s for s in found.signatures if s != fstype]
        if fstype not in fstypes:
            return Decision(
                REFUSE,
                "",
                "carries a foreign {} filesystem (label {!r})".format(
                    fstype, found.blkid.get("LABEL", "")
                ),
            )
        if found.blkid.get("LABEL", "") != label:
            return Decision(
                REFUSE,
                "",
                "carries a {} filesystem labelled {!r}, expected label {!r}".format(
                    fstype, found.blkid.get("LABEL", ""), label
                ),
            )
        if other:
            return Decision(
                REFUSE, "", f"{fstype} filesystem {label} also carries signatures {other}"
            )
        return Decision(MOUNT, fstype, f"{fstype} filesystem labelled {label}: ours, mount only")
    if found.signatures:
        return Decision(REFUSE, "", f"carries signatures {found.signatures}")
    if not found.head_blank:
        return Decision(
            REFUSE, "", "no known signature but the first MiB is not blank (unknown data)"
        )
    return Decision(FORMAT, "", "provably blank: no signature, no partition table, zeroed head")


def choose_mkfs(fstypes: List[str], runner: Runner) -> Optional[str]:
    """First filesystem type in catalogue order whose mkfs tool exists (xfs on OL8)."""
    for fstype in fstypes:
        if runner.which("mkfs." + fstype):
            return fstype
    return None


def format_blank(device: str, label: str, fstype: str, runner: Runner) -> None:
    """mkfs without any force flag: the tools refuse by themselves if a signature appeared."""
    argv = {
        "xfs": ["mkfs.xfs", "-q", "-L", label, device],
        "ext4": ["mkfs.ext4", "-q", "-L", label, device],
    }[fstype]
    try:
        runner.run(argv)
    except CommandError as exc:
        raise DiskError(f"formatting {device} failed: {exc}") from exc


def check_ours(device: str, label: str, fstypes: List[str], runner: Runner) -> Decision:
    """Used by appcore-disk@.service before every mount: only MOUNT passes."""
    decision = decide(probe(device, runner), label, fstypes)
    if decision.action != MOUNT:
        raise DiskError(
            "{}: {} ({})".format(
                device,
                decision.reason,
                "blank, not yet prepared by appcore apply"
                if decision.action == FORMAT
                else "refused",
            )
        )
    return decision
