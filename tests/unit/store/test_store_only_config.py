"""The store tasks' config: only the `store:` section is read, paths relative to the file,
endpoint and bucket from the environment when set."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from imagefactory.config import load_config, load_store_settings
from imagefactory.errors import ConfigError
from imagefactory.store.settings import ENV_BUCKET, ENV_ENDPOINT, StoreKind

REPO = Path(__file__).resolve().parents[3]
HYPERVISOR = """\
store:
  kind: s3
  endpoint: minio.lan:9000
  bucket: images
  read_timeout: 5
  allowed_signers: keys/allowed_signers
  image_dir: images
"""


def write(directory: Path, text: str, name: str = "store.yaml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path


def test_a_file_with_only_a_store_section_is_enough(tmp_path: Path) -> None:
    """No version, sources, layers or families; relative paths are relative to the file."""
    path = write(tmp_path / "etc", HYPERVISOR)
    settings = load_store_settings(path, env={})
    assert settings.kind is StoreKind.S3 and settings.endpoint == "minio.lan:9000"
    assert settings.read_timeout == 5.0
    assert settings.allowed_signers == tmp_path / "etc" / "keys" / "allowed_signers"
    assert settings.image_dir == tmp_path / "etc" / "images"
    with pytest.raises(ConfigError, match="'version' is a required property"):
        load_config(path)  # the build tasks still want the whole file


def test_a_copy_of_the_factory_config_elsewhere_serves_the_store_tasks(tmp_path: Path) -> None:
    """factory.yaml copied out of the repository: its build paths are not judged here."""
    copy = tmp_path / "factory.yaml"
    shutil.copy(REPO / "factory.yaml", copy)
    settings = load_store_settings(copy, env={})
    assert settings.endpoint == "minio.example.internal:9000"
    assert settings.image_dir == Path("/var/lib/libvirt/images")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(copy)


def test_environment_wins_over_the_file(tmp_path: Path) -> None:
    """IMAGEFACTORY_STORE_ENDPOINT / _BUCKET replace the file's values; empty means unset."""
    path = write(tmp_path, HYPERVISOR)
    env = {ENV_ENDPOINT: "10.0.0.5:9000", ENV_BUCKET: "templates"}
    settings = load_store_settings(path, env=env)
    assert (settings.endpoint, settings.bucket) == ("10.0.0.5:9000", "templates")
    empty = load_store_settings(path, env={ENV_ENDPOINT: "", ENV_BUCKET: ""})  # empty: unset
    assert (empty.endpoint, empty.bucket) == ("minio.lan:9000", "images")


def test_bad_environment_values_name_their_variable(tmp_path: Path) -> None:
    """A bad value from the environment is reported under its variable, not the file."""
    path = write(tmp_path, HYPERVISOR)
    with pytest.raises(ConfigError) as err:
        load_store_settings(path, env={ENV_ENDPOINT: "http://minio:9000", ENV_BUCKET: " "})
    found = {(p.file, p.path) for p in err.value.problems}
    assert found == {("environment", ENV_ENDPOINT), ("environment", ENV_BUCKET)}
    assert "must not contain a scheme" in str(err.value)


def test_environment_for_a_directory_store_is_refused(tmp_path: Path) -> None:
    """An fs store would quietly ignore an endpoint: say so instead."""
    path = write(tmp_path, "store: {path: store}\n")
    with pytest.raises(ConfigError) as err:
        load_store_settings(path, env={ENV_ENDPOINT: "minio:9000"})
    (problem,) = err.value.problems
    assert (problem.file, problem.path) == ("environment", ENV_ENDPOINT)
    assert "store.kind: s3" in problem.hint


def test_misspelt_section_and_bad_settings_are_reported_together(tmp_path: Path) -> None:
    """A misspelt `store:` would mean all defaults: it is an error, with the other problems."""
    path = write(tmp_path, "stor: {kind: s3}\nstore: {kind: ftp, read_timeout: 0}\n")
    with pytest.raises(ConfigError) as err:
        load_store_settings(path, env={})
    paths = [p.path for p in err.value.problems]
    assert paths == [".stor", "store.kind", "store.read_timeout"]
    assert "store" in err.value.problems[0].hint
    assert all(p.file == str(path) for p in err.value.problems)


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "the file is empty"), ("- store\n", "must be a mapping of sections")],
    ids=["empty", "a-list"],
)
def test_a_file_that_is_not_a_config_is_one_clear_error(
    tmp_path: Path, text: str, message: str
) -> None:
    """An empty file or a list: one problem, with an example of a store section."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_store_settings(path, env={})
    assert [(p.path, p.message) for p in err.value.problems] == [(".", message)]
    assert "store:" in err.value.problems[0].hint
