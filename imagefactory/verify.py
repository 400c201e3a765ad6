"""Verify a sealed image: boot it, run its testinfra specs over SSH, record the result.

The verifier logs in with a key made for this run only, passed like an operator's key
(SMBIOS OEM string); the build key is gone from sealed images and is never used here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from imagefactory import progress, provenance, vm
from imagefactory.buildkey import generate_key
from imagefactory.errors import FactoryError
from imagefactory.fsutil import write_json_atomic


@dataclass(frozen=True)
class VerifyResult:
    passed: bool
    tests: int
    failed: int
    report: Path


def _counts(junit: Path) -> tuple[int, int]:
    root = ET.parse(junit).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    tests = sum(int(s.get("tests", 0)) for s in suites)
    bad = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
    return tests, bad


def verify_image(image: Path, manifest: Path | None, specs: Sequence[Path], reports: Path, *,
                 accelerator: str, extra_qemu_args: Sequence[str] = (),
                 label: str = "verify") -> VerifyResult:
    """Boot `image`, run `specs` against it, write JUnit to `reports`, update the manifest."""
    if not specs:
        raise FactoryError(f"no specs to verify {image} with")
    reports.mkdir(parents=True, exist_ok=True)
    junit = reports / f"{label}.junit.xml"
    with tempfile.TemporaryDirectory(prefix="verify-") as tmp:
        key = generate_key(Path(tmp) / "verify_ed25519", "imagefactory-verify")
        serial = reports / f"{label}.serial.log"
        with progress.step(f"booting {image.name} under {accelerator} for verification"), \
                vm.boot(image, accelerator=accelerator, login_key=key.private,
                        login_pubkey=key.public_line, serial_log=serial,
                        extra_args=extra_qemu_args) as booted:
            argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                    f"--hosts={booted.testinfra_host}", f"--ssh-identity-file={key.private}",
                    f"--junitxml={junit}", "-W", "ignore::UserWarning",
                    *map(str, specs)]
            env = {**os.environ, "IF_VERIFY_PUBKEY": key.public_line}
            progress.say(f"==> running {len(specs)} spec file(s) as {booted.user}")
            subprocess.run(argv, env=env, check=False, stdin=subprocess.DEVNULL)
    if not junit.is_file():
        raise FactoryError(f"the spec run wrote no report ({junit})")
    tests, failed = _counts(junit)
    result = VerifyResult(tests > 0 and failed == 0, tests, failed, junit)
    if manifest is not None:
        _record(manifest, result)
    return result


def _record(manifest: Path, result: VerifyResult) -> None:
    """Put the report beside the manifest (it travels with the image) and record the result."""
    shutil.copy2(result.report, manifest.parent / result.report.name)
    doc = json.loads(manifest.read_text())
    doc["verification"] = {"passed": result.passed, "tests": result.tests,
                           "failed": result.failed, "report": result.report.name,
                           "at": provenance.now()}
    write_json_atomic(manifest, doc)
