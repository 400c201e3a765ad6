"""Revocation records: the refusal messages, the reason rule, and how images shows them (pure
functions; no store, no key)."""

from __future__ import annotations

import pytest

from imagefactory.store.backend import StoreError
from imagefactory.store.listing import ImageRow, format_images
from imagefactory.store.revocation import Revocation, RevokedError, check_reason, refuse_revoked

V1 = "20261124T101500Z-1a2b3c4d5e6f"
V2 = "20261125T101500Z-6f5e4d3c2b1a"
GOOD = Revocation(
    "persistence",
    V1,
    "CVE-2026-0001 in openssl",
    "2026-12-01T10:00:00+00:00",
    "ops@build01",
    True,
    "builder@imagefactory.test",
)
UNTRUSTED = Revocation(
    "persistence", V2, "forged", "", "", False, problem="signature does not match its content"
)


def test_no_record_is_not_refused() -> None:
    """A version without a revocation record passes the check."""
    refuse_revoked(None, "promoting it to stable")


def test_valid_record_refusal_names_family_version_and_reason() -> None:
    """A valid record: the refusal names family, version, reason, when, who, and the action."""
    with pytest.raises(RevokedError) as err:
        refuse_revoked(GOOD, "promoting it to stable")
    assert str(err.value) == (
        "persistence 20261124T101500Z-1a2b3c4d5e6f is revoked (CVE-2026-0001 in openssl; at "
        "2026-12-01T10:00:00+00:00 by ops@build01); not promoting it to stable"
    )


def test_untrusted_record_is_refused_as_untrusted() -> None:
    """A record whose signature fails is refused, saying so, and its claimed reason is not used."""
    with pytest.raises(RevokedError) as err:
        refuse_revoked(UNTRUSTED, "deploying it")
    text = str(err.value)
    assert text.startswith(
        "persistence 20261125T101500Z-6f5e4d3c2b1a has a revocation record that does not verify "
        "(signature does not match its content); not deploying it until it is repaired"
    )
    assert "forged" not in text


@pytest.mark.parametrize("reason", ["", "   ", "two\nlines", "tab\there", "x" * 301])
def test_bad_reason_is_refused(reason: str) -> None:
    """An empty, multi-line, control-character or over-long reason is refused."""
    with pytest.raises(StoreError, match="--reason"):
        check_reason(reason)


def test_reason_is_stripped() -> None:
    """Surrounding blanks are dropped from the reason."""
    assert check_reason("  bad kernel  ") == "bad kernel"


def test_images_table_marks_revoked_and_untrusted_records() -> None:
    """images: REVOKED yes / BAD per row, then the reason and the untrusted record's problem."""
    rows = [
        ImageRow("persistence", V1, "-", 1024, None, "yes", "yes", "yes"),
        ImageRow("persistence", V2, "stable", 1024, None, "yes", "yes", "BAD"),
    ]
    revs = {("persistence", V1): GOOD, ("persistence", V2): UNTRUSTED}
    text = format_images(rows, [], {}, revs)
    lines = text.splitlines()
    assert lines[0].split() == [
        "FAMILY",
        "VERSION",
        "CHANNELS",
        "SIZE",
        "SCORE",
        "VERIFIED",
        "SIGNED",
        "REVOKED",
    ]
    assert lines[1].split()[-1] == "yes" and lines[2].split()[-1] == "BAD"
    assert lines[3:] == [
        "",
        "revoked versions (promote and the fleet refuse them):",
        "  persistence/20261124T101500Z-1a2b3c4d5e6f: CVE-2026-0001 in openssl "
        "(at 2026-12-01T10:00:00+00:00 by ops@build01)",
        "",
        "revocation records that do not verify (promote and the fleet refuse these versions "
        "until `invoke revoke` signs them again):",
        "  persistence/20261125T101500Z-6f5e4d3c2b1a: signature does not match its content",
    ]
