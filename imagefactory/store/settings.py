"""Store settings (the `store:` section of factory.yaml and of a fleet file) and S3 credentials.

The section is declared once: its shape (keys, types, allowed values) in
schemas/store.schema.json, what the program holds (types and defaults) in StoreSettings;
imagefactory.util.model builds the one from the other. The rules across fields (an s3 store
needs an endpoint, S3's part size bounds) are checked here, on the built settings.

Credentials never come from the config file: they are read from the environment
(IMAGEFACTORY_S3_ACCESS_KEY / IMAGEFACTORY_S3_SECRET_KEY) or from an INI file named by
IMAGEFACTORY_S3_CREDENTIALS, so they stay out of the repository and out of logs.
"""

from __future__ import annotations

import configparser
import enum
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from imagefactory.errors import ConfigError, Problem
from imagefactory.util.model import build, load_schema, parse_size, schema_registry

ENV_ACCESS = "IMAGEFACTORY_S3_ACCESS_KEY"
ENV_SECRET = "IMAGEFACTORY_S3_SECRET_KEY"
ENV_CREDENTIALS_FILE = "IMAGEFACTORY_S3_CREDENTIALS"
# Settings the environment may give instead of the file (store tasks only, docs/store.md):
# a hypervisor's deployment tool often knows the endpoint and bucket, not the file's author.
ENV_ENDPOINT = "IMAGEFACTORY_STORE_ENDPOINT"
ENV_BUCKET = "IMAGEFACTORY_STORE_BUCKET"
ENV_SETTINGS = {"endpoint": ENV_ENDPOINT, "bucket": ENV_BUCKET}
CREDENTIALS_SECTION = "s3"
# Keys someone may try to put credentials under: refused with a pointer to the variables above.
# The schema declares them (as deprecated properties) so that they are not reported as unknown.
CREDENTIAL_KEYS = ("access_key", "secret_key", "credentials")

MIB = 1024 * 1024
# S3 allows parts of 5 MiB .. 5 GiB and 10000 parts (the uploader grows the part for huge
# files). 8 MiB x 4 workers: within the noise of the other settings tried against the loopback
# server here (bench/bench_store.py); keeps at most workers + 4 parts (64 MiB) in memory.
MIN_PART_SIZE = 5 * MIB
MAX_PART_SIZE = 5 * 1024 * MIB


class StoreKind(enum.StrEnum):
    """`store.kind`: where the images are kept, and what reaching them takes."""

    FS = "fs"  # a directory: a local disk or a mounted share
    S3 = "s3"  # MinIO or any S3-compatible server

    @property
    def needs_endpoint(self) -> bool:
        """Reached over the network at `store.endpoint`."""
        return self is StoreKind.S3


@dataclass(frozen=True)
class StoreSettings:
    """Where images are published and pulled from, and the keys used to sign and check them.

    Types and defaults only: what a config file may write is schemas/store.schema.json."""

    kind: StoreKind = StoreKind.FS
    path: Path = Path("artifacts/store")
    endpoint: str = ""  # host:port of the S3 server, no scheme
    bucket: str = "images"
    secure: bool = True
    region: str = "us-east-1"
    part_size: int = field(default=8 * MIB, metadata={"parse": parse_size})
    workers: int = 4
    # Seconds a read (listing, HEAD, each wait of a download) waits for the server; tried
    # twice, so a hung server fails a pull in about 40 s. Writes wait longer (s3_backend).
    read_timeout: float = 20.0
    # Share built layers through this store (cache/layers/ in it): build hosts push every
    # layer they build and fetch missing ones before building (docs/store.md).
    layer_cache: bool = False
    signing_key: Path = Path("~/.ssh/id_ed25519").expanduser()  # as the builder would expand it
    allowed_signers: Path = Path("/etc/imagefactory/allowed_signers")
    image_dir: Path = Path("/var/lib/libvirt/images")

    def __post_init__(self) -> None:
        # Settings made in code (tests, tools) may spell the kind as its value.
        object.__setattr__(self, "kind", StoreKind(self.kind))


@dataclass(frozen=True)
class Credentials:
    """An S3 key pair. The secret is left out of repr() so it cannot end up in a log line."""

    access_key: str
    secret_key: str = field(repr=False)


_SCHEMA = load_schema("store")


def store_settings_from_dict(
    data: Mapping[str, Any] | None, file: str, root: Path | None = None
) -> tuple[StoreSettings, list[Problem]]:
    """StoreSettings from the `store:` mapping of `file` (None: no section, all defaults), and
    every problem in it at once, each with its field. Relative paths are joined to `root`, the
    file's directory (None: they stay relative). A bad field keeps its default in the result."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        return StoreSettings(), [Problem(file, "store", "must be a mapping of settings")]
    problems = _shape_problems(data, file)
    valid = {k: v for k, v in data.items() if k not in problems}
    settings = build(StoreSettings, valid, root=root)
    order = {key: i for i, key in enumerate(data)}
    ordered = sorted(problems.items(), key=lambda kv: order.get(kv[0], len(order)))
    return settings, [p for _, p in ordered] + _cross_checks(settings, file)


def store_settings_with_env(
    data: Mapping[str, Any] | None,
    file: str,
    root: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[StoreSettings, list[Problem]]:
    """store_settings_from_dict, with the ENV_SETTINGS variables that are set (not empty) in
    place of the file's values. A problem with such a value names its variable."""
    env = os.environ if env is None else env
    given = {key: env[var] for key, var in ENV_SETTINGS.items() if env.get(var, "")}
    if not given or not isinstance(data, Mapping | None):
        return store_settings_from_dict(data, file, root)
    settings, problems = store_settings_from_dict({**(data or {}), **given}, file, root)
    out = []
    for p in problems:
        key = p.path.removeprefix("store.")
        out.append(
            Problem("environment", ENV_SETTINGS[key], p.message, p.hint) if key in given else p
        )
    if not settings.kind.needs_endpoint:  # an fs store would quietly ignore them
        out += [
            Problem(
                "environment",
                ENV_SETTINGS[key],
                f"is set, but the store in {file} is a directory (store.kind: {settings.kind})",
                "set store.kind: s3 in the file, or unset the variable",
            )
            for key in given
        ]
    return settings, out


def _shape_problems(data: Mapping[str, Any], file: str) -> dict[Any, Problem]:
    """One problem per bad key, from the schema (the credentials keys from their own rule)."""
    properties: Mapping[str, Any] = _SCHEMA["properties"]
    out: dict[Any, Problem] = {
        key: Problem(
            file,
            f"store.{key}",
            "credentials do not belong in the config file",
            f"set {ENV_ACCESS}/{ENV_SECRET} or {ENV_CREDENTIALS_FILE}",
        )
        for key in data
        if key in CREDENTIAL_KEYS
    }
    known = "known: " + ", ".join(k for k in sorted(properties) if k not in CREDENTIAL_KEYS)
    validator = jsonschema.Draft202012Validator(_SCHEMA, registry=schema_registry())
    for err in validator.iter_errors(data):
        if err.validator == "additionalProperties":
            for key in data:
                if key not in properties:
                    out.setdefault(key, Problem(file, f"store.{key}", "unknown setting", known))
        elif err.path:
            key = err.path[0]
            expected = properties.get(key, {}).get("description", "")
            hint = f"expected {expected}" if expected else ""
            out.setdefault(key, Problem(file, f"store.{key}", err.message, hint))
        else:  # the schema's other rules on the whole section, none today
            out.setdefault(None, Problem(file, "store", err.message))
    return out


def _cross_checks(s: StoreSettings, file: str) -> list[Problem]:
    out: list[Problem] = []
    if s.kind.needs_endpoint and not s.endpoint:
        out.append(
            Problem(file, "store.endpoint", f"required when kind is {s.kind}", "e.g. minio:9000")
        )
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
    return out


def settings_or_raise(
    data: Mapping[str, Any] | None, file: str, root: Path | None = None
) -> StoreSettings:
    """store_settings_from_dict, raising ConfigError with all problems if any."""
    settings, problems = store_settings_from_dict(data, file, root)
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
