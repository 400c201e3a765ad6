"""The store tasks' view of a config file: its `store:` section and nothing else.

publish, images, promote, prune and pull use only the store settings, so only they are
validated: a hypervisor can use a copy of the build host's factory.yaml anywhere (the build
sections, with paths that only exist in the repository, are not judged) or a file holding
nothing but a `store:` section. Relative paths in it are relative to the file's directory.
IMAGEFACTORY_STORE_ENDPOINT and IMAGEFACTORY_STORE_BUCKET, when set, win over the file.
The build tasks keep loading the whole file with load_config.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from imagefactory.errors import ConfigError, Problem
from imagefactory.store.settings import StoreSettings, store_settings_with_env
from imagefactory.util.configfile import read_yaml
from imagefactory.util.model import load_schema

_EXAMPLE = "e.g. store: {kind: s3, endpoint: minio.lan:9000, bucket: images} (docs/store.md)"


def load_store_settings(path: Path, env: Mapping[str, str] | None = None) -> StoreSettings:
    """The store settings of the config file `path` (with the environment's overrides; `env`
    None: os.environ); ConfigError listing every problem in what is read."""
    path = path.resolve() if path.exists() else path
    doc = read_yaml(path)
    file = str(path)
    if doc is None:
        raise ConfigError([Problem(file, ".", "the file is empty", _EXAMPLE)])
    if not isinstance(doc, dict):
        raise ConfigError([Problem(file, ".", "must be a mapping of sections", _EXAMPLE)])
    # The other sections are not read, but a misspelt `store:` must not pass for a file that
    # has none (all defaults): the top-level names are checked against the factory schema.
    sections = sorted(load_schema("factory")["properties"])
    problems = [
        Problem(file, f".{key}", "unknown section", f"known: {', '.join(sections)}")
        for key in doc
        if key not in sections
    ]
    settings, more = store_settings_with_env(doc.get("store"), file, path.parent, env)
    problems += more
    if problems:
        raise ConfigError(problems)
    return settings
