"""Data-disk safety: a disk is formatted only when provably blank and mounted only when it is
provably ours (expected filesystem and label, nothing else on it). Anything else is refused.

Why both wipefs and blkid: `blkid -p -s TYPE` is empty on a GPT-only disk, so a TYPE-only check
would format it; wipefs lists every signature (gpt, PMBR, LVM2_member, LUKS, raid...).

Blank needs more than "no signature at offset 0": a wiped partition table leaves the filesystems
of its partitions intact at the partitions' start offsets, and a recycled volume may hold data
anywhere. When blkid and wipefs find nothing, `blank_findings` looks deeper (README "Blank-disk
detection"); the disk is blank only if that finds nothing either, and any error counts as a
finding (fail closed).
"""

import os
import struct
from typing import BinaryIO, Dict, List, NamedTuple, Optional, Tuple

from appcore.errors import CommandError, DiskError
from appcore.runner import Runner

FORMAT, MOUNT, REFUSE = "format", "mount", "refuse"
KIB, MIB, SECTOR = 1024, 1024 * 1024, 512

# Where the usual partitioning tools start a partition, in bytes. blkid and the magic checks
# below probe at each one, as if the partition table were still there.
PARTITION_OFFSETS = (
    34 * SECTOR,  # first usable LBA of a GPT on a 512-byte-sector disk (gdisk -a 1, old parted)
    40 * SECTOR,  # GPT partitions aligned to 4 KiB (FreeBSD gpart, macOS)
    6 * 4096,  # first usable LBA of a GPT on a 4 KiB-sector disk, unaligned
    63 * SECTOR,  # DOS cylinder alignment: fdisk before util-linux 2.17.1, Windows XP
    2048 * SECTOR,  # 1 MiB: fdisk, sfdisk, parted, gdisk, anaconda, Windows since Vista
    4096 * SECTOR,  # 2 MiB: the partition after a 1 MiB BIOS boot partition (anaconda on BIOS)
    8192 * SECTOR,  # 4 MiB: erase-block alignment of SD card and some cloud image layouts
)
# Non-zero samples. Both ends are read whole (partition tables and their GPT backup, LVM labels
# and metadata, MD superblocks 0.90/1.0 at the end). Across the whole device, SAMPLE_COUNT evenly
# spaced samples, the first at 0 and the last at the end: a run of data longer than the spacing
# (1/255 of the device: 4 MiB of a 1 GiB disk, 400 MiB of 100 GiB) cannot fall between two
# samples, and filesystems spread their metadata over the whole device (ext4 group descriptors
# and inode tables, XFS allocation groups), so a disk that held one is hit many times. 256
# positions keep the read bounded at 8 + 64 MiB whatever the size, about a second at boot.
EDGE_BYTES = 4 * MIB
SAMPLE_COUNT = 256
SAMPLE_BYTES = 256 * KIB
CHUNK = MIB
ZEROS = bytes(CHUNK)

MD_MAGIC_LE, MD_MAGIC_BE = b"\xfc\x4e\x2b\xa9", b"\xa9\x2b\x4e\xfc"  # 0xa92b4efc
EXT3_INCOMPAT = 0x0002 | 0x0004 | 0x0010  # filetype, recover, meta_bg
EXT3_RO_COMPAT = 0x0001 | 0x0002 | 0x0004  # sparse_super, large_file, btree_dir
WINDOW = 64 * KIB + 4 * KIB  # bytes read at each start offset: reaches the btrfs superblock


class Probe(NamedTuple):
    device: str
    blkid: Dict[str, str]
    signatures: List[str]
    findings: List[str]  # why a disk without a signature at offset 0 is still not blank


class Decision(NamedTuple):
    action: str
    fstype: str
    reason: str


def parse_export(text: str) -> Dict[str, str]:
    """`blkid -o export` lines as a dict (DEVNAME included)."""
    fields = {}
    for line in text.splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            fields[key] = value
    return fields


def probe(device: str, runner: Runner) -> Probe:
    """Read-only low-level probe of a block device or image file."""
    result = runner.run(["blkid", "-p", "-o", "export", device], check=False)
    if result.returncode not in (0, 2):  # 2 means "nothing found"
        raise DiskError(
            f"blkid -p failed on {device} (exit {result.returncode}): {result.stderr.strip()}"
        )
    fields = parse_export(result.stdout)
    sigs = runner.run(
        ["wipefs", "--no-act", "--noheadings", "--output", "TYPE", device], check=False
    )
    if sigs.returncode != 0:
        raise DiskError(
            f"wipefs --no-act failed on {device} (exit {sigs.returncode}): {sigs.stderr.strip()}"
        )
    signatures = [s.strip() for s in sigs.stdout.splitlines() if s.strip()]
    findings: List[str] = []
    if not (fields.get("TYPE") or fields.get("PTTYPE") or signatures):
        findings = blank_findings(device, runner)  # blank at offset 0: look everywhere else
    return Probe(device, fields, signatures, findings)


def blank_findings(device: str, runner: Runner) -> List[str]:
    """Everything that shows the device held data; empty only for a provably blank device.

    blkid at each partition start offset, then our own magic checks (at offset 0, each partition
    start and the end of the device), then the non-zero samples. An error is a finding.
    """
    findings: List[str] = []
    try:
        with open(device, "rb", buffering=0) as fh:
            size = fh.seek(0, os.SEEK_END)
            if size <= 0:
                return [f"{device} reports a size of {size} bytes"]
            found = offset_signatures(device, size, runner)
            findings.extend(text for _, text in found)
            seen = {offset for offset, _ in found}  # blkid named it already: no repeat
            findings.extend(t for o, t in magic_signatures(fh, size) if o not in seen)
            findings.extend(sample_findings(fh, size))
    except OSError as exc:
        findings.append(f"could not read {device}: {exc}")
    return findings


def describe(name: str, offset: int, label: str = "", detail: str = "") -> Tuple[int, str]:
    """One finding, worded the same by blkid and the magic checks: names what and where."""
    extra = [f"label {label!r}"] if label else []
    extra += [detail] if detail else []
    text = f"{name} signature at offset {offset}"
    return offset, text + (" ({})".format(", ".join(extra)) if extra else "")


def offset_signatures(device: str, size: int, runner: Runner) -> List[Tuple[int, str]]:
    """`blkid -p -O OFFSET` at each partition start offset: what a wiped table left behind."""
    found = []
    for offset in PARTITION_OFFSETS:
        if offset >= size:
            continue
        argv = ["blkid", "-p", "-o", "export", "-O", str(offset), device]
        result = runner.run(argv, check=False)
        if result.returncode == 2:  # nothing found
            continue
        fields = parse_export(result.stdout)
        names = [fields[k] for k in ("TYPE", "PTTYPE") if fields.get(k)]
        if result.returncode != 0 or not names:
            found.append(
                (
                    offset,
                    "{} gave no clear answer (exit {}): {}".format(
                        " ".join(argv[:-1]),
                        result.returncode,
                        (result.stderr or result.stdout).strip() or "no output",
                    ),
                )
            )
            continue
        found.extend(describe(n, offset, fields.get("LABEL", "")) for n in names)
    return found


def read_at(fh: BinaryIO, offset: int, length: int) -> bytes:
    """length bytes from offset (fewer at the end of the device)."""
    fh.seek(offset)
    parts: List[bytes] = []
    while length > 0:
        part = fh.read(length)
        if not part:
            break
        parts.append(part)
        length -= len(part)
    return b"".join(parts)


def text_field(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def magics_at(win: bytes, base: int) -> List[Tuple[int, str]]:
    """Known magics of a filesystem, volume or table starting at base (win: bytes from base)."""
    found = []
    sb = win[1024:2048]
    if len(sb) >= 136 and sb[56:58] == b"\x53\xef":  # ext2/3/4 s_magic 0xEF53
        compat, incompat, ro_compat = struct.unpack_from("<III", sb, 92)
        kind = "ext3" if compat & 0x4 else "ext2"
        if incompat & ~EXT3_INCOMPAT or ro_compat & ~EXT3_RO_COMPAT:
            kind = "ext4"
        found.append(describe(kind, base, text_field(sb[120:136])))
    if win[:4] == b"XFSB":
        found.append(describe("xfs", base, text_field(win[108:120])))
    if win[65600:65608] == b"_BHRfS_M":
        found.append(describe("btrfs", base, text_field(win[65536 + 299 : 65536 + 555])))
    if win[:6] == b"LUKS\xba\xbe":
        found.append(describe("crypto_LUKS", base))
    for sector in range(4):
        label = win[sector * SECTOR : sector * SECTOR + 32]
        if label[:8] == b"LABELONE":
            name = "LVM2_member" if label[24:32] == b"LVM2 001" else "LVM"
            found.append(describe(name, base, detail=f"label in sector {sector}"))
    for at, version in ((0, "1.1"), (4096, "1.2")):
        if win[at : at + 4] == MD_MAGIC_LE:
            detail = f"metadata {version}, superblock at offset {base + at}"
            found.append(describe("linux_raid_member", base, detail=detail))
    for page in (4096, 8192, 16384, 65536):
        if win[page - 10 : page] in (b"SWAPSPACE2", b"SWAP-SPACE"):
            found.append(describe("swap", base, detail=f"page size {page}"))
    for at in (512, 4096):
        if win[at : at + 8] == b"EFI PART":
            found.append(describe("gpt", base, detail=f"header at offset {base + at}"))
    if win[510:512] == b"\x55\xaa":
        found.append(describe("boot sector 0x55AA", base))
    return found


def magic_signatures(fh: BinaryIO, size: int) -> List[Tuple[int, str]]:
    """Our own check of the magics, independent of the blkid version: at offset 0, at each
    partition start offset, and where MD and GPT keep copies at the end of the device."""
    found = []
    for base in (0,) + PARTITION_OFFSETS:
        if base < size:
            found.extend(magics_at(read_at(fh, base, WINDOW), base))
    ends = [
        (size - SECTOR, "gpt", "backup header in the last 512-byte sector", (b"EFI PART",)),
        (size - 4096, "gpt", "backup header in the last 4 KiB sector", (b"EFI PART",)),
        (
            (((size >> 9) - 16) & ~7) << 9,
            "linux_raid_member",
            "metadata 1.0 superblock at the end",
            (MD_MAGIC_LE,),
        ),
        (
            (size & ~(64 * KIB - 1)) - 64 * KIB,
            "linux_raid_member",
            "metadata 0.90 superblock at the end",
            (MD_MAGIC_LE, MD_MAGIC_BE),
        ),
    ]
    for offset, name, detail, magics in ends:
        if offset >= 0 and any(read_at(fh, offset, len(m)) == m for m in magics):
            found.append(describe(name, offset, detail=detail))
    return found


def sample_regions(size: int) -> List[Tuple[int, int]]:
    """(start, end) byte ranges read by the sample check: both ends whole, SAMPLE_COUNT evenly
    spaced samples in between (4 KiB aligned), overlapping ranges merged."""
    ranges = [(0, min(size, EDGE_BYTES)), (max(0, size - EDGE_BYTES), size)]
    span = max(0, size - SAMPLE_BYTES)
    for k in range(SAMPLE_COUNT):
        start = (k * span // (SAMPLE_COUNT - 1)) & ~4095
        ranges.append((start, min(size, start + SAMPLE_BYTES)))
    merged: List[Tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        elif end > start:
            merged.append((start, end))
    return merged


def first_nonzero(fh: BinaryIO, start: int, end: int) -> Optional[int]:
    """Offset of the first non-zero byte in [start, end), or None."""
    offset = start
    while offset < end:
        chunk = read_at(fh, offset, min(CHUNK, end - offset))
        if not chunk:
            raise OSError(f"short read at offset {offset} (device size changed?)")
        if chunk != ZEROS[: len(chunk)]:
            return offset + len(chunk) - len(chunk.lstrip(b"\0"))
        offset += len(chunk)
    return None


def sample_findings(fh: BinaryIO, size: int) -> List[str]:
    """Non-zero data anywhere in the sampled regions (one finding: the first offset, and how
    many regions hold data)."""
    regions = sample_regions(size)
    hits = [o for o in (first_nonzero(fh, s, e) for s, e in regions) if o is not None]
    if not hits:
        return []
    return [f"non-zero data at offset {hits[0]} (in {len(hits)} of {len(regions)} sampled regions)"]


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
    if found.findings:
        return Decision(REFUSE, "", "is not provably blank: " + "; ".join(found.findings))
    return Decision(
        FORMAT,
        "",
        "provably blank: no signature at offset 0 or at any partition start, all samples zero",
    )


def choose_mkfs(fstypes: List[str], runner: Runner) -> Optional[str]:
    """First filesystem type in catalogue order whose mkfs tool exists (xfs on OL8)."""
    for fstype in fstypes:
        if runner.which("mkfs." + fstype):
            return fstype
    return None


def format_blank(device: str, label: str, fstype: str, runner: Runner) -> None:
    """mkfs without any force flag, so the tool refuses a signature by itself: mkfs.xfs does
    unless given -f; mke2fs checks only when stdin and stdout are a terminal (without one it
    formats over anything), so it runs on one, with "n" typed for its "Proceed anyway?"."""
    try:
        if fstype == "xfs":
            runner.run(["mkfs.xfs", "-q", "-L", label, device])
        else:
            runner.run_on_terminal(["mkfs.ext4", "-q", "-L", label, device])
    except CommandError as exc:
        raise DiskError(
            f"formatting {device} failed (mkfs refuses a device that is in use or carries "
            f"a signature): {exc}"
        ) from exc


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
