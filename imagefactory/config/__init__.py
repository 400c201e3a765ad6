"""The factory's configuration: its model (model.py), loading (load.py), meaning (validate.py)."""

from imagefactory.config.load import load_config, read_yaml, schema_problems
from imagefactory.config.model import (
    SCALAR,
    BuildSettings,
    ComplianceScan,
    Config,
    Family,
    IsoSource,
    LayerDef,
    Source,
    StandinSource,
)

__all__ = [
    "SCALAR",
    "BuildSettings",
    "ComplianceScan",
    "Config",
    "Family",
    "IsoSource",
    "LayerDef",
    "Source",
    "StandinSource",
    "load_config",
    "read_yaml",
    "schema_problems",
]
