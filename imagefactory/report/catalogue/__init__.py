"""The catalogue page: a static site of every family's versions and channels, made from the
store through its trust chain (model), rendered as HTML (html) with inline SVG plots (svg),
written to a directory or uploaded to the store (site). `invoke catalogue` and the
--catalogue option of `invoke publish` and `invoke promote` come here."""

from __future__ import annotations

from pathlib import Path

from imagefactory.report.catalogue.model import Catalogue, Revocations, collect
from imagefactory.report.catalogue.site import STORE_PREFIX, site_files, upload_site, write_site
from imagefactory.store import api
from imagefactory.store.settings import StoreSettings


def make_catalogue(settings: StoreSettings, revocations: Revocations | None = None) -> Catalogue:
    """The store's catalogue, read-only (a directory store that does not exist is not made)."""
    backend = api.open_store(settings, create=False)
    return collect(backend, settings.allowed_signers.expanduser(), revocations)


def write_catalogue(
    settings: StoreSettings, out: Path, revocations: Revocations | None = None
) -> str:
    """`invoke catalogue`: the site written to `out`; one line saying where and what."""
    cat = make_catalogue(settings, revocations)
    files = site_files(cat)
    where = write_site(files, out)
    return _summary(cat, f"{where}/index.html", len(files))


def upload_catalogue(settings: StoreSettings, revocations: Revocations | None = None) -> str:
    """The site uploaded to the store under catalogue/ (publish and promote --catalogue)."""
    backend = api.open_store(settings)
    cat = collect(backend, settings.allowed_signers.expanduser(), revocations)
    count = upload_site(backend, site_files(cat))
    return _summary(cat, f"{backend.describe()} {STORE_PREFIX}index.html", count)


def _summary(cat: Catalogue, where: str, count: int) -> str:
    versions = sum(len(f.versions) for f in cat.families)
    return (
        f"catalogue: {len(cat.families)} famil{'y' if len(cat.families) == 1 else 'ies'}, "
        f"{versions} version(s), {count} file(s): {where}"
    )
