"""The SSH host key fingerprints, printed on the serial console at every boot
(appcore-hostkeys.service): the fleet reads the console through libvirt, a channel only the
hypervisor sees, and trusts only these keys (imagefactory/fleet/hostkeys.py parses the block)."""

import base64
import glob
import hashlib
from typing import List, Tuple

from appcore.hostfs import Host

BEGIN = "-----BEGIN SSH HOST KEY FINGERPRINTS-----"
END = "-----END SSH HOST KEY FINGERPRINTS-----"
KEY_GLOB = "/etc/ssh/ssh_host_*_key.pub"


def fingerprint(public_line: str) -> Tuple[str, str]:
    """(key type, OpenSSH SHA256 fingerprint) of one `TYPE BASE64 [COMMENT]` line."""
    words = public_line.split()
    if len(words) < 2:
        raise ValueError("not an OpenSSH public key line")
    blob = base64.b64decode(words[1], validate=True)
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return words[0], "SHA256:" + digest


def block(host: Host) -> Tuple[str, List[str]]:
    """The block (one `TYPE SHA256:...` line per host key) and the problems met."""
    lines, problems = [], []
    for path in sorted(glob.glob(host.path(KEY_GLOB))):
        try:
            with open(path) as fh:
                kind, fp = fingerprint(fh.read(64 * 1024))
            lines.append(f"{kind} {fp}")
        except (OSError, ValueError) as exc:
            problems.append(f"{path}: {exc}")
    if not lines:
        problems.append(f"no SSH host key found ({KEY_GLOB})")
        return "", problems
    return "\n".join([BEGIN] + lines + [END]) + "\n", problems
