"""Reports on sealed and published images: the SBOM (CycloneDX) and changelogs between versions.

See docs/store.md, "SBOM and changelog".
"""
