"""The factory's configuration: its model (model.py), loading (load.py), meaning (validate.py);
the store tasks read only its store section (store_only.py)."""

from imagefactory.config.load import load_config
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
from imagefactory.config.store_only import load_store_settings

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
    "load_store_settings",
]
