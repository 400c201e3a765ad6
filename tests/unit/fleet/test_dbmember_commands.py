"""The commands the fleet sends a round-robin member are App-Core's own: each parses with
App-Core's command line as the action the rotation means (no path or tool named by the fleet)."""

import pytest

# isort: off
import tests.appcore_path  # noqa: F401  (puts App-Core on sys.path: before its imports)
from appcore.cli import parser

# isort: on
from imagefactory.fleet import dbmember


def parsed(argv: list[str]):
    assert argv[0] == "appcore"
    return parser().parse_args(argv[1:])


def test_backup_is_appcore_rr_backup() -> None:
    """The backup streams from `appcore rr backup`, which knows the role's tool and datadir."""
    args = parsed(dbmember.BACKUP_ARGV)
    assert (args.command, args.action, args.confirm) == ("rr", "backup", None)


@pytest.mark.parametrize("action", ["purge", "restore"])
def test_purge_and_restore_name_the_member(action: str) -> None:
    """purge and restore carry --confirm=<the node's hostname>, which App-Core checks."""
    args = parsed(dbmember.replace_argv(action, "pers-db-rr7d-03"))
    assert (args.command, args.action, args.confirm) == ("rr", action, "pers-db-rr7d-03")


@pytest.mark.parametrize(("read_only", "flags"), [(True, (True, False)), (False, (False, True))])
def test_mode_sets_one_of_the_two_modes(read_only: bool, flags: tuple[bool, bool]) -> None:
    """rr mode --read-only or --writable, never both."""
    args = parsed(dbmember.mode_argv(read_only))
    assert (args.action, args.read_only, args.writable) == ("mode", *flags)
