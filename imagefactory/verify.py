"""Verify a sealed image: boot it, run its testinfra specs and compliance scan, record both.

The verifier logs in with a credential made for this run only, passed like an operator's
SSH key (SMBIOS OEM string); the build credential is gone from sealed images, never used here.
The scan (optional, per family) runs `oscap` in the same boot, with the datastream and
tailoring uploaded from the build host, so the pinned content is what gets evaluated.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko

from imagefactory.config import ComplianceScan
from imagefactory.errors import FactoryError
from imagefactory.guest import vm
from imagefactory.guest.credential import generate_credential
from imagefactory.hardening import ScanSummary, gate_scan, load_waivers, summarize_scan
from imagefactory.report.packages import ManifestFieldError
from imagefactory.util import progress, provenance
from imagefactory.util.fsutil import write_json_atomic
from imagefactory.util.tools import child_env

GUEST_SCAN_DIR = "/var/tmp/imagefactory-scan"  # in the -snapshot guest: gone after the boot
OSCAP_RAN = (0, 2)  # 2: the scan ran and some rule failed
SCAN_TIMEOUT_S = 1800  # the OL8 datastream takes minutes to evaluate under TCG
PACKAGES_TIMEOUT_S = 300
# One command in the guest: a first line naming the database, then one package per line.
# rpm-based when rpm knows its own package (a Debian guest may have the rpm tool, not the db);
# dpkg lines carry the status so removed packages whose conffiles remain can be left out.
_RPM_FORMAT = r"%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}\n"
_DPKG_FORMAT = r"${db:Status-Status} ${Package}=${Version} ${Architecture}\n"
PACKAGE_QUERY = (
    f"if rpm -q rpm >/dev/null 2>&1; then echo rpm; rpm -qa --qf {shlex.quote(_RPM_FORMAT)}; "
    "elif command -v dpkg-query >/dev/null 2>&1; then echo dpkg; "
    f"dpkg-query -W -f {shlex.quote(_DPKG_FORMAT)}; "
    "else echo none; fi"
)
_DPKG_NOT_INSTALLED = ("not-installed", "config-files")


@dataclass(frozen=True)
class VerifyResult:
    passed: bool  # the specs; a gating scan raises instead
    tests: int
    failed: int
    report: Path
    compliance: ScanSummary | None = None


@dataclass(frozen=True)
class PackageList:
    """The guest's installed packages, sorted by code point (as `LC_ALL=C sort` does)."""

    format: str  # rpm: name-version-release.arch; dpkg: name=version arch
    packages: tuple[str, ...]

    @property
    def sha256(self) -> str:
        """sha256 of the list as a text file, one package per line (`... | sha256sum`)."""
        return hashlib.sha256("".join(f"{p}\n" for p in self.packages).encode()).hexdigest()

    def to_manifest(self) -> dict[str, Any]:
        return {
            "packages": list(self.packages),
            "packages_count": len(self.packages),
            "packages_sha256": self.sha256,
            "packages_format": self.format,
        }


def parse_packages(output: str) -> PackageList:
    """PackageList from PACKAGE_QUERY's output; FactoryError if there is no usable list."""
    head, *lines = output.splitlines() or [""]
    kind = head.strip()
    if kind == "none":
        raise FactoryError(
            "cannot record the image's packages: the guest has neither rpm nor dpkg-query"
        )
    if kind == "rpm":
        found = [ln.strip() for ln in lines if ln.strip()]
    elif kind == "dpkg":
        found = []
        for ln in lines:
            status, _, entry = ln.strip().partition(" ")
            if entry and status not in _DPKG_NOT_INSTALLED:
                found.append(entry.strip())
    else:
        raise FactoryError(
            f"cannot record the image's packages: unexpected output from the "
            f"guest's package query: {output.strip()[:200]!r}"
        )
    if not found:
        raise FactoryError(
            f"cannot record the image's packages: the guest's {kind} database "
            "lists no installed package"
        )
    return PackageList(kind, tuple(sorted(found)))


def _collect_packages(booted: vm.BootedVM) -> PackageList:
    """The installed package list, read over SSH as the admin user (no root needed)."""
    client = vm.connect(booted.port, booted.user, booted.key, timeout=60)
    try:
        _, out, err = client.exec_command(PACKAGE_QUERY, timeout=PACKAGES_TIMEOUT_S)
        text = out.read().decode(errors="replace")
        errors = err.read().decode(errors="replace")
        status = out.channel.recv_exit_status()
    finally:
        client.close()
    if status != 0:
        raise FactoryError(
            f"cannot record the image's packages: the package query exited "
            f"{status} in the guest: {(errors or text).strip()[-500:]}"
        )
    return parse_packages(text)


def _counts(junit: Path) -> tuple[int, int]:
    root = ET.parse(junit).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    tests = sum(int(s.get("tests", 0)) for s in suites)
    bad = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
    return tests, bad


def _firmware(manifest: Path | None) -> str:
    """How the image boots, as its manifest records it (the build's root layer decides).
    BIOS without a manifest, or for one written before the firmware was recorded (every
    layer booted BIOS then)."""
    if manifest is None:
        return "bios"
    return str(json.loads(manifest.read_text()).get("firmware", "bios"))


def verify_image(
    image: Path,
    manifest: Path | None,
    specs: Sequence[Path],
    reports: Path,
    *,
    accelerator: str,
    extra_qemu_args: Sequence[str] = (),
    label: str = "verify",
    scan: ComplianceScan | None = None,
    after_reboot: Sequence[Path] = (),
) -> VerifyResult:
    """Boot `image`, run `specs` (then `scan`, if given) in that one boot, update the manifest.

    The boot uses the firmware the manifest records (OVMF for "uefi"; BIOS without one).

    With `after_reboot`, the guest is then rebooted inside the same QEMU (what the first boot
    wrote is kept) and those specs run too. JUnit, ARF and HTML go to `reports` and beside
    the manifest. A scan with `gate` raises BuildError on a failing rule no waiver
    tolerates, after the manifest records it.
    """
    if not specs:
        raise FactoryError(f"no specs to verify {image} with")
    reports.mkdir(parents=True, exist_ok=True)
    junit = reports / f"{label}.junit.xml"
    junits = [junit]
    scanned = None
    packages = None
    with tempfile.TemporaryDirectory(prefix="verify-") as tmp:
        login = generate_credential(Path(tmp) / "verify_ed25519", "imagefactory-verify")
        serial = reports / f"{label}.serial.log"
        with (
            progress.step(f"booting {image.name} under {accelerator} for verification"),
            vm.boot(
                image,
                accelerator=accelerator,
                login_key=login.private,
                login_pubkey=login.public_line,
                serial_log=serial,
                firmware=_firmware(manifest),
                extra_args=extra_qemu_args,
            ) as booted,
        ):
            _wait_for_startup(booted)
            if manifest is not None:
                packages = _collect_packages(booted)
                progress.say(f"==> {len(packages.packages)} {packages.format} packages installed")
            _run_specs(booted, login.public_line, specs, junit, label)
            if scan is not None:
                with progress.step(f"compliance scan in the guest ({scan.profile})"):
                    scanned = _scan_in_guest(booted, scan, reports, label)
            if after_reboot:
                with progress.step("rebooting the guest"):
                    vm.reboot(booted)
                _wait_for_startup(booted)
                junits.append(reports / f"{label}.after-reboot.junit.xml")
                _run_specs(booted, login.public_line, after_reboot, junits[-1], label)
    missing = [str(j) for j in junits if not j.is_file()]
    if missing:
        raise FactoryError(f"the spec run wrote no report ({', '.join(missing)})")
    counts = [_counts(j) for j in junits]
    tests, failed = sum(c[0] for c in counts), sum(c[1] for c in counts)
    summary = None
    if scan is not None and scanned is not None:
        waivers = load_waivers(scan.waivers) if scan.waivers is not None else []
        summary = summarize_scan(scanned[0], scan.profile, waivers)
    result = VerifyResult(tests > 0 and failed == 0, tests, failed, junit, summary)
    if manifest is not None:
        compliance = None
        if scan is not None and summary is not None and scanned is not None:
            compliance = {
                **summary.to_manifest(),
                "report": scanned[1].name,
                "arf": scanned[0].name,
                "datastream": scan.datastream.name,
                "tailoring": scan.tailoring.name,
                "gate": scan.gate,
            }
        _record(manifest, result, compliance, scanned or (), packages)
    if scan is not None and scan.gate and summary is not None:
        gate_scan(summary)
    return result


def _wait_for_startup(booted: vm.BootedVM) -> None:
    """Specs judge a finished boot: a unit still queued is not a unit that failed."""
    state = vm.wait_for_startup(booted)
    if state in vm.STARTING:
        progress.say(
            f"==> the guest is still {state} after {vm.STARTUP_TIMEOUT_S:.0f} s;"
            " the specs run anyway"
        )
    elif state != "running":
        progress.say(f"==> the guest finished booting {state} (systemctl --failed tells why)")


def _run_specs(
    booted: vm.BootedVM, login_pubkey: str, specs: Sequence[Path], junit: Path, family: str
) -> None:
    """testinfra over paramiko as the admin user; results go to `junit`. The specs see the
    family they verify as IF_VERIFY_FAMILY (one spec module can serve several families)."""
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--hosts={booted.testinfra_host}",
        f"--ssh-identity-file={booted.key}",
        f"--junitxml={junit}",
        "-W",
        "ignore::UserWarning",
        *map(str, specs),
    ]
    env = child_env({"IF_VERIFY_PUBKEY": login_pubkey, "IF_VERIFY_FAMILY": family})
    progress.say(f"==> running {len(specs)} spec file(s) as {booted.user}")
    subprocess.run(argv, env=env, check=False, stdin=subprocess.DEVNULL)


def _scan_in_guest(
    booted: vm.BootedVM, scan: ComplianceScan, reports: Path, label: str
) -> tuple[Path, Path]:
    """Upload datastream + tailoring, run `oscap xccdf eval` as root, fetch (ARF, HTML)."""
    arf, html = reports / f"{label}.arf.xml", reports / f"{label}.report.html"
    log = reports / f"{label}.oscap.log"
    ds = f"{GUEST_SCAN_DIR}/{scan.datastream.name}"
    tailoring = f"{GUEST_SCAN_DIR}/{scan.tailoring.name}"
    log.write_text("")  # this run's output only
    cmd = [
        "sudo",
        "oscap",
        "xccdf",
        "eval",
        "--tailoring-file",
        tailoring,
        "--profile",
        scan.profile,
        "--results-arf",
        f"{GUEST_SCAN_DIR}/arf.xml",
        "--report",
        f"{GUEST_SCAN_DIR}/report.html",
        ds,
    ]
    client = vm.connect(booted.port, booted.user, booted.key, timeout=60)
    try:
        _guest_run(client, f"mkdir -p {GUEST_SCAN_DIR}", (0,), log)
        with client.open_sftp() as sftp:
            sftp.put(str(scan.datastream), ds)
            sftp.put(str(scan.tailoring), tailoring)
            status = _guest_run(client, shlex.join(cmd), OSCAP_RAN, log)
            progress.say(f"==> oscap exited {status} (log: {log})")
            sftp.get(f"{GUEST_SCAN_DIR}/arf.xml", str(arf))
            sftp.get(f"{GUEST_SCAN_DIR}/report.html", str(html))
    finally:
        client.close()
    return arf, html


def _guest_run(client: paramiko.SSHClient, command: str, ok: Sequence[int], log: Path) -> int:
    """Run `command` in the guest, append its output to `log`; an exit not in `ok` raises."""
    _, out, _ = client.exec_command(command + " 2>&1", timeout=SCAN_TIMEOUT_S)
    text = out.read().decode(errors="replace")
    status = out.channel.recv_exit_status()
    with log.open("a") as f:
        f.write(f"$ {command}\n{text}[exit {status}]\n")
    if status not in ok:
        raise FactoryError(
            f"in the guest, `{command}` exited {status}: {text.strip()[-500:]} (full output: {log})"
        )
    return status


def _record(
    manifest: Path,
    result: VerifyResult,
    compliance: dict[str, Any] | None,
    scan_files: Sequence[Path],
    packages: PackageList | None = None,
) -> None:
    """Put the reports beside the manifest (they travel with the image), record the results.

    One atomic write, so the manifest never has a verification without its compliance
    (or its package list). The SBOM of the packages (sbom.cdx.json) is written just before
    it, and named in its `sbom` field.
    """
    for path in (result.report, *scan_files):
        shutil.copy2(path, manifest.parent / path.name)
    doc = json.loads(manifest.read_text())
    now = provenance.now()
    doc["verification"] = {
        "passed": result.passed,
        "tests": result.tests,
        "failed": result.failed,
        "report": result.report.name,
        "at": now,
    }
    if compliance is not None:
        doc["compliance"] = {**compliance, "at": now}
    # Imported here: cyclonedx takes 0.2 s to import, which no other task should pay.
    from imagefactory.report.sbom import MANIFEST_FIELD, write_sbom

    doc.pop(MANIFEST_FIELD, None)  # never name an SBOM of an earlier package list
    if packages is not None:
        doc.update(packages.to_manifest())
        try:
            doc[MANIFEST_FIELD] = write_sbom(manifest.parent, doc)
        except ManifestFieldError as exc:
            # Only a manifest not written by the build lacks what the SBOM needs; the
            # verification result is still worth recording.
            progress.say(f"==> no SBOM written: {exc}")
    write_json_atomic(manifest, doc)
