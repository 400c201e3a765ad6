"""Where the factory's own files are: the repository holding packer/, standin/, hardening/."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
