"""StoreSettings from the config dict, and S3 credentials from env or file."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagefactory.errors import ConfigError
from imagefactory.store.settings import (
    ENV_ACCESS,
    ENV_CREDENTIALS_FILE,
    ENV_SECRET,
    Credentials,
    StoreSettings,
    load_credentials,
    settings_or_raise,
    store_settings_from_dict,
)


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
