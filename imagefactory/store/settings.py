"""Store settings (the `store:` section of the config) and S3 credentials.

Credentials never come from the config file: they are read from the environment
(IMAGEFACTORY_S3_ACCESS_KEY / IMAGEFACTORY_S3_SECRET_KEY) or from an INI file named by
IMAGEFACTORY_S3_CREDENTIALS, so they stay out of the repository and out of logs.
"""

from __future__ import annotations

import configparser
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from imagefactory.errors import ConfigError, Problem

ENV_ACCESS = "IMAGEFACTORY_S3_ACCESS_KEY"
ENV_SECRET = "IMAGEFACTORY_S3_SECRET_KEY"
ENV_CREDENTIALS_FILE = "IMAGEFACTORY_S3_CREDENTIALS"
CREDENTIALS_SECTION = "s3"

MIB = 1024 * 1024
# S3 allows parts of 5 MiB .. 5 GiB and 10000 parts (the uploader grows the part for huge
# files). 8 MiB x 4 workers: within the noise of the other settings tried against the loopback
# server here (bench/bench_store.py); keeps at most workers + 4 parts (64 MiB) in memory.
MIN_PART_SIZE = 5 * MIB
MAX_PART_SIZE = 5 * 1024 * MIB


@dataclass(frozen=True)
class StoreSettings:
    """Where images are published and pulled from, and the keys used to sign and check them."""

    kind: str = "fs"  # "fs" (a local directory) or "s3" (MinIO or any S3-compatible server)
    path: Path = Path("artifacts/store")
    endpoint: str = ""  # host:port of the S3 server, no scheme
    bucket: str = "images"
    secure: bool = True
    region: str = "us-east-1"
    part_size: int = 8 * MIB
    workers: int = 4
    signing_key: Path = Path("~/.ssh/id_ed25519")
    allowed_signers: Path = Path("/etc/imagefactory/allowed_signers")
    image_dir: Path = Path("/var/lib/libvirt/images")


@dataclass(frozen=True)
class Credentials:
    """An S3 key pair. The secret is left out of repr() so it cannot end up in a log line."""

    access_key: str
    secret_key: str = field(repr=False)


def _as_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _as_bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _as_int(value: Any) -> int | None:
    # bool is an int subclass; `secure: true` typed into `workers` must not pass as 1.
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _as_size(value: Any) -> int | None:
    """An int of bytes, or a string like '64MiB' / '1GiB'."""
    if (number := _as_int(value)) is not None:
        return number
    if not isinstance(value, str):
        return None
    text = value.strip()
    for suffix, factor in (("GiB", 1024 * MIB), ("MiB", MIB), ("KiB", 1024)):
        if text.endswith(suffix) and text[: -len(suffix)].strip().isdigit():
            return int(text[: -len(suffix)]) * factor
    return int(text) if text.isdigit() else None


def _as_path(value: Any) -> Path | None:
    text = _as_str(value)
    return Path(text).expanduser() if text else None


_PARSERS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "kind": (_as_str, "'fs' or 's3'"),
    "path": (_as_path, "a directory path"),
    "endpoint": (_as_str, "host:port of the S3 server, without http://"),
    "bucket": (_as_str, "a bucket name"),
    "secure": (_as_bool, "true (https) or false (http)"),
    "region": (_as_str, "a region name such as us-east-1"),
    "part_size": (_as_size, "bytes, or a size like 64MiB"),
    "workers": (_as_int, "a whole number of parallel part uploads"),
    "signing_key": (_as_path, "path to the build host's OpenSSH private key"),
    "allowed_signers": (_as_path, "path to an OpenSSH allowed_signers file"),
    "image_dir": (_as_path, "the hypervisor's image directory"),
}


def store_settings_from_dict(
    data: Mapping[str, Any] | None, file: str
) -> tuple[StoreSettings, list[Problem]]:
    """Build StoreSettings from the `store:` mapping; return every bad field as a Problem."""
    problems: list[Problem] = []
    values: dict[str, Any] = {}
    if data is None:
        return StoreSettings(), problems
    if not isinstance(data, Mapping):
        return StoreSettings(), [Problem(file, "store", "must be a mapping of settings")]
    known = {f.name for f in fields(StoreSettings)}
    for key, raw in data.items():
        where = f"store.{key}"
        if key in ("access_key", "secret_key", "credentials"):
            problems.append(
                Problem(
                    file,
                    where,
                    "credentials do not belong in the config file",
                    f"set {ENV_ACCESS}/{ENV_SECRET} or {ENV_CREDENTIALS_FILE}",
                )
            )
            continue
        if key not in known:
            problems.append(
                Problem(file, where, "unknown setting", "known: " + ", ".join(sorted(known)))
            )
            continue
        parser, expected = _PARSERS[key]
        parsed = parser(raw)
        if parsed is None:
            problems.append(Problem(file, where, f"invalid value {raw!r}", f"expected {expected}"))
            continue
        values[key] = parsed
    settings = StoreSettings(**values)
    problems.extend(_cross_checks(settings, file))
    return settings, problems


def _cross_checks(s: StoreSettings, file: str) -> list[Problem]:
    out: list[Problem] = []
    if s.kind not in ("fs", "s3"):
        out.append(Problem(file, "store.kind", f"unknown store kind {s.kind!r}", "use fs or s3"))
    if s.kind == "s3" and not s.endpoint:
        out.append(Problem(file, "store.endpoint", "required when kind is s3", "e.g. minio:9000"))
    if "://" in s.endpoint:
        out.append(
            Problem(
                file,
                "store.endpoint",
                "must not contain a scheme",
                "write host:port and set store.secure instead",
            )
        )
    if not MIN_PART_SIZE <= s.part_size <= MAX_PART_SIZE:
        out.append(
            Problem(
                file,
                "store.part_size",
                f"{s.part_size} is out of range",
                "S3 parts must be between 5MiB and 5GiB",
            )
        )
    if not 1 <= s.workers <= 64:
        out.append(Problem(file, "store.workers", f"{s.workers} is out of range", "use 1..64"))
    return out


def settings_or_raise(data: Mapping[str, Any] | None, file: str) -> StoreSettings:
    """store_settings_from_dict, raising ConfigError with all problems if any."""
    settings, problems = store_settings_from_dict(data, file)
    if problems:
        raise ConfigError(problems)
    return settings


def load_credentials(env: Mapping[str, str] | None = None) -> Credentials:
    """Credentials from the environment, else from the INI file named by the environment."""
    env = os.environ if env is None else env
    access, secret = env.get(ENV_ACCESS, ""), env.get(ENV_SECRET, "")
    if access and secret:
        return Credentials(access, secret)
    if access or secret:
        missing = ENV_SECRET if access else ENV_ACCESS
        raise ConfigError(
            [
                Problem(
                    "environment",
                    missing,
                    "is not set but its pair is",
                    "set both variables or neither",
                )
            ]
        )
    cred_file = env.get(ENV_CREDENTIALS_FILE, "")
    if not cred_file:
        raise ConfigError(
            [
                Problem(
                    "environment",
                    ENV_ACCESS,
                    "no S3 credentials found",
                    f"set {ENV_ACCESS} and {ENV_SECRET}, or "
                    f"{ENV_CREDENTIALS_FILE}=path/to/file (INI, section [s3])",
                )
            ]
        )
    return _read_credentials_file(Path(cred_file))


def _read_credentials_file(path: Path) -> Credentials:
    where = str(path)
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(
            [Problem(where, ".", f"cannot read credentials file: {exc.strerror}")]
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            [
                Problem(
                    where, ".", "credentials file is readable by other users", f"chmod 600 {path}"
                )
            ]
        )
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text, source=where)
    except configparser.Error:
        # The parser's message may quote file content, which may be the secret.
        raise ConfigError(
            [
                Problem(
                    where,
                    ".",
                    "not a valid INI file",
                    "expected [s3] with access_key and secret_key",
                )
            ]
        ) from None
    problems = [
        Problem(where, f"{CREDENTIALS_SECTION}.{key}", "missing")
        for key in ("access_key", "secret_key")
        if not parser.get(CREDENTIALS_SECTION, key, fallback="").strip()
    ]
    if problems:
        raise ConfigError(problems)
    return Credentials(
        parser.get(CREDENTIALS_SECTION, "access_key").strip(),
        parser.get(CREDENTIALS_SECTION, "secret_key").strip(),
    )
