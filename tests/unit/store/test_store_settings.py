"""StoreSettings from the config dict, and S3 credentials from env or file."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagefactory.config import load_config
from imagefactory.errors import ConfigError
from imagefactory.store import api
from imagefactory.store.fs_backend import FsBackend
from imagefactory.store.settings import (
    CREDENTIAL_KEYS,
    ENV_ACCESS,
    ENV_CREDENTIALS_FILE,
    ENV_SECRET,
    Credentials,
    StoreKind,
    StoreSettings,
    load_credentials,
    settings_or_raise,
    store_settings_from_dict,
)
from imagefactory.util.model import load_schema, schema_mismatches
from tests.standinkit import standin_config


def test_defaults_need_no_configuration() -> None:
    settings, problems = store_settings_from_dict(None, "factory.yaml")
    assert problems == []
    assert settings == StoreSettings()
    assert settings.kind == "fs" and settings.path == Path("artifacts/store")


def test_full_s3_section() -> None:
    settings, problems = store_settings_from_dict(
        {
            "kind": "s3",
            "endpoint": "minio.lan:9000",
            "bucket": "templates",
            "secure": False,
            "region": "eu-1",
            "part_size": "128MiB",
            "workers": 8,
            "signing_key": "/etc/imagefactory/key",
            "allowed_signers": "/etc/as",
            "image_dir": "/srv/images",
        },
        "factory.yaml",
    )
    assert problems == []
    assert settings.part_size == 128 * 1024 * 1024 and settings.workers == 8
    assert settings.secure is False and settings.image_dir == Path("/srv/images")


def test_all_bad_fields_reported_at_once() -> None:
    _, problems = store_settings_from_dict(
        {
            "kind": "ftp",
            "secure": "yes",
            "workers": True,
            "part_size": "1MiB",
            "colour": 1,
            "secret_key": "hunter2",
            "endpoint": "http://x:9000",
        },
        "factory.yaml",
    )
    paths = sorted(p.path for p in problems)
    assert paths == [
        "store.colour",
        "store.endpoint",
        "store.kind",
        "store.part_size",
        "store.secret_key",
        "store.secure",
        "store.workers",
    ]
    assert all(p.file == "factory.yaml" for p in problems)
    assert not any("hunter2" in str(p) for p in problems)
    with pytest.raises(ConfigError, match="7 problems"):
        settings_or_raise(
            {
                "kind": "ftp",
                "secure": "yes",
                "workers": True,
                "part_size": "1MiB",
                "colour": 1,
                "secret_key": "x",
                "endpoint": "http://x",
            },
            "f.yaml",
        )


def test_s3_needs_endpoint() -> None:
    _, problems = store_settings_from_dict({"kind": "s3"}, "f.yaml")
    assert [p.path for p in problems] == ["store.endpoint"]


def test_schema_and_dataclass_declare_the_same_settings() -> None:
    schema = load_schema("store")
    assert schema_mismatches(StoreSettings, schema) == []
    refused = {k for k, p in schema["properties"].items() if p.get("deprecated")}
    assert refused == set(CREDENTIAL_KEYS)


def test_relative_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    settings, problems = store_settings_from_dict(
        {"path": "store", "signing_key": "~/k", "allowed_signers": "/etc/as"},
        "fleet.yaml",
        tmp_path,
    )
    assert problems == []
    assert settings.path == tmp_path / "store" and settings.signing_key == Path.home() / "k"
    assert settings.allowed_signers == Path("/etc/as")
    defaults, _ = store_settings_from_dict(None, "fleet.yaml", tmp_path)
    assert defaults.path == tmp_path / "artifacts/store"


def test_bad_values_and_unknown_keys_say_what_is_expected() -> None:
    _, problems = store_settings_from_dict(
        {"workers": 0, "bucket": " ", "part_size": "8MB", "colur": "red", "access_key": "AKIA"},
        "f.yaml",
    )
    by_path = {p.path: p for p in problems}
    assert list(by_path) == [
        "store.workers",
        "store.bucket",
        "store.part_size",
        "store.colur",
        "store.access_key",
    ]
    assert by_path["store.workers"].hint.startswith("expected a whole number")
    assert "kind" in by_path["store.colur"].hint and "access_key" not in by_path["store.colur"].hint
    assert by_path["store.access_key"].message == "credentials do not belong in the config file"
    assert ENV_ACCESS in by_path["store.access_key"].hint
    assert not any("AKIA" in str(p) for p in problems)
    _, problems = store_settings_from_dict(["fs"], "f.yaml")  # type: ignore[arg-type]
    assert [(p.path, p.message) for p in problems] == [("store", "must be a mapping of settings")]


def test_store_kind_carries_what_differs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (ENV_ACCESS, ENV_SECRET, ENV_CREDENTIALS_FILE):
        monkeypatch.delenv(name, raising=False)
    assert StoreSettings(kind="s3").kind is StoreKind.S3  # type: ignore[arg-type]
    assert StoreKind.S3.needs_endpoint and not StoreKind.FS.needs_endpoint
    backend = api.open_backend(StoreSettings(path=tmp_path))
    assert isinstance(backend, FsBackend) and backend.root == tmp_path
    with pytest.raises(ConfigError, match="no S3 credentials"):
        api.open_backend(StoreSettings(kind=StoreKind.S3, endpoint="x:9000"))


FACTORY = standin_config({"seal": {"scripts": ["s.sh"], "seal": True}}, {"fam": ["base", "seal"]})


def test_store_section_of_a_factory_config(tmp_path: Path) -> None:
    """The factory schema refers to the store schema; the store's own messages still apply."""
    (tmp_path / "s.sh").write_text("#!/bin/bash\n")
    path = tmp_path / "factory.yaml"
    path.write_text(FACTORY + "store: {kind: s3, endpoint: 'm:9000', path: here}\n")
    store = load_config(path).store
    assert store.kind is StoreKind.S3 and store.path == tmp_path / "here"
    path.write_text(FACTORY + "store: {kind: ftp, colour: 1}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert [p.path for p in err.value.problems] == [".store", ".store.kind"]
    assert "kind" in err.value.problems[0].hint
    path.write_text(FACTORY + "store: {secret_key: hunter2, part_size: 1MiB}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert [(p.path, p.message) for p in err.value.problems] == [
        ("store.secret_key", "credentials do not belong in the config file"),
        ("store.part_size", "1048576 is out of range"),
    ]
    assert "hunter2" not in str(err.value)


def test_credentials_from_env_and_secret_not_in_repr() -> None:
    creds = load_credentials({ENV_ACCESS: "AK", ENV_SECRET: "SECRETVALUE"})
    assert creds == Credentials("AK", "SECRETVALUE")
    assert "SECRETVALUE" not in repr(creds)


def test_half_set_env_is_an_error() -> None:
    with pytest.raises(ConfigError, match=ENV_SECRET):
        load_credentials({ENV_ACCESS: "AK"})
    with pytest.raises(ConfigError, match="no S3 credentials"):
        load_credentials({})


def test_credentials_file(tmp_path: Path) -> None:
    path = tmp_path / "creds.ini"
    path.write_text("[s3]\naccess_key = AK\nsecret_key = S3CR3T\n")
    path.chmod(0o600)
    assert load_credentials({ENV_CREDENTIALS_FILE: str(path)}) == Credentials("AK", "S3CR3T")
    path.chmod(0o640)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_credentials({ENV_CREDENTIALS_FILE: str(path)})
    path.write_text("access_key = S3CR3T-in-a-broken-file\n")
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="not a valid INI") as err:
        load_credentials({ENV_CREDENTIALS_FILE: str(path)})
    assert "S3CR3T" not in str(err.value)
    path.write_text("[s3]\naccess_key = AK\n")
    with pytest.raises(ConfigError, match=r"s3\.secret_key: missing"):
        load_credentials({ENV_CREDENTIALS_FILE: str(path)})
    with pytest.raises(ConfigError, match="cannot read"):
        load_credentials({ENV_CREDENTIALS_FILE: str(tmp_path / "nope")})
