"""Error types. Each one maps to an exit code so a failed boot is easy to diagnose."""

from typing import Iterable


class AppcoreError(Exception):
    """A failure that leaves the role unconfigured (fail closed); the message says why."""

    exit_code = 1


class CatalogueError(AppcoreError):
    """The role catalogue or image.json is invalid; carries every problem found."""

    exit_code = 2

    def __init__(self, source: str, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        lines = [f"{source}: {len(self.problems)} problem(s):"]
        lines.extend("  - " + p for p in self.problems)
        super().__init__("\n".join(lines))


class RoleError(AppcoreError):
    """No role, an unknown role, conflicting sources, wrong family or a refused role change."""

    exit_code = 3


class DiskError(AppcoreError):
    """A data disk is missing or is not provably ours or blank: it is never touched."""

    exit_code = 4


class ServiceError(AppcoreError):
    """A service the role needs is not installed in this image."""

    exit_code = 5


class CommandError(AppcoreError):
    """An external command failed."""

    exit_code = 6
