"""The apply flow for roles without data disks, and the refusals that happen before any change."""

import json
from pathlib import Path

import pytest
from appcore.cli import main, render_status
from appcore_testkit import RecordingRunner, add_smbios, make_root


def apply(root: Path, runner: RecordingRunner, *extra: str) -> int:
    return main(["--root", str(root), "apply", "--disk-wait", "0"] + list(extra), runner=runner)


def state(root: Path) -> dict:
    return json.loads((root / "run/appcore/state.json").read_text())


def test_worker_role_is_configured(tmp_path: Path) -> None:
    """API on a workers image: config rendered, drop-in written, only api-worker enabled."""
    root = make_root(
        tmp_path, family="workers", services=["api-worker.service", "app-worker.service"]
    )
    add_smbios(root, ["appcore:role=API", "appcore:cluster=blue"])
    runner = RecordingRunner()
    assert apply(root, runner) == 0
    env = (root / "etc/appcore/conf/api/worker.env").read_text()
    assert "APPCORE_ROLE=API\nAPPCORE_FAMILY=workers\nAPPCORE_CLUSTER=blue\n" in env
    # readable by the service's own user (MariaDB skipped an unreadable config silently)
    assert (root / "etc/appcore/conf/api/worker.env").stat().st_mode & 0o777 == 0o644
    dropin = root / "etc/systemd/system/api-worker.service.d/50-appcore.conf"
    assert "Requires=appcore.service" in dropin.read_text()
    assert runner.enabled == {"api-worker.service"}
    assert (state(root)["status"], state(root)["source"]) == ("configured", "smbios")


def test_second_run_changes_nothing(tmp_path: Path) -> None:
    """Running apply twice: the second run records no change and runs no mutating command."""
    root = make_root(tmp_path, family="workers", services=["pg-worker.service"])
    add_smbios(root, ["appcore:role=PG"])
    runner = RecordingRunner()
    assert apply(root, runner) == 0
    runner.recorded.clear()
    assert apply(root, runner) == 0
    assert state(root)["changes"] == []
    assert runner.mutations() == []


def test_role_from_the_wrong_family_is_refused(tmp_path: Path) -> None:
    """API on a persistence image is refused with exit 3 and nothing is written."""
    root = make_root(tmp_path, family="persistence", services=["api-worker.service"])
    add_smbios(root, ["appcore:role=API"])
    runner = RecordingRunner()
    assert apply(root, runner) == 3
    assert "belongs to the workers family but this image is persistence" in state(root)["error"]
    assert not (root / "etc/systemd/system").exists()
    assert runner.mutations() == []


def test_missing_service_is_a_clear_failure(tmp_path: Path) -> None:
    """A role whose service unit is not in the image fails with exit 5 naming the unit."""
    root = make_root(tmp_path, family="workers")
    add_smbios(root, ["appcore:role=INVOICE"])
    assert apply(root, RecordingRunner()) == 5
    assert "does not contain invoice-worker.service" in state(root)["error"]


def test_missing_image_family_fails_closed(tmp_path: Path) -> None:
    """Without /etc/appcore/image.json nothing is configured (exit 2)."""
    root = make_root(tmp_path, family=None, services=["app-worker.service"])
    add_smbios(root, ["appcore:role=APP"])
    assert apply(root, RecordingRunner()) == 2
    assert "image-init --family" in state(root)["error"]


def pinned_app_now_api(tmp_path: Path, runner: RecordingRunner) -> Path:
    """A workers VM configured (and pinned) as APP whose /etc/appcore/role now says API."""
    root = make_root(
        tmp_path, family="workers", services=["app-worker.service", "api-worker.service"]
    )
    (root / "etc/appcore/role").write_text("APP\n")
    assert apply(root, runner) == 0
    (root / "etc/appcore/role").write_text("API\n")
    return root


def test_pinned_role_refuses_a_different_role(tmp_path: Path) -> None:
    """After APP was pinned, a VM now announced as API is refused (exit 3) and APP is kept."""
    runner = RecordingRunner()
    root = pinned_app_now_api(tmp_path, runner)
    assert apply(root, runner) == 3
    assert "pinned to role APP" in state(root)["error"]
    assert runner.enabled == {"app-worker.service"}


def test_forced_role_change_retires_the_old_role(tmp_path: Path) -> None:
    """With --force-role-change the old service is disabled and its drop-in removed."""
    runner = RecordingRunner()
    root = pinned_app_now_api(tmp_path, runner)
    assert apply(root, runner, "--force-role-change") == 0
    assert ["systemctl", "disable", "--now", "app-worker.service"] in runner.recorded
    assert (
        not (root / "etc/systemd/system/app-worker.service.d").joinpath("50-appcore.conf").exists()
    )
    assert json.loads((root / "var/lib/appcore/pin.json").read_text())["role"] == "API"


def test_hostname_from_channel_is_set(tmp_path: Path) -> None:
    """appcore:hostname=wrk-report-01 is applied with hostnamectl."""
    root = make_root(tmp_path, family="workers", services=["report-worker.service"])
    add_smbios(root, ["appcore:role=REPORT", "appcore:hostname=wrk-report-01"])
    runner = RecordingRunner()
    assert apply(root, runner) == 0
    assert ["hostnamectl", "set-hostname", "wrk-report-01"] in runner.recorded


def test_hostname_resolves_through_etc_hosts(tmp_path: Path) -> None:
    """The image's 127.0.1.1 line names the new hostname (sudo waited for DNS without it)."""
    root = make_root(tmp_path, family="workers", services=["report-worker.service"])
    (root / "etc/hosts").write_text("127.0.0.1 localhost\n127.0.1.1 standin\n::1 localhost\n")
    add_smbios(root, ["appcore:role=REPORT", "appcore:hostname=wrk-report-01"])
    assert apply(root, RecordingRunner()) == 0
    assert (root / "etc/hosts").read_text() == (
        "127.0.0.1 localhost\n127.0.1.1 wrk-report-01\n::1 localhost\n"
    )


def test_invalid_hostname_is_refused(tmp_path: Path) -> None:
    """An upper-case hostname from a channel is refused before any change."""
    root = make_root(tmp_path, family="workers", services=["report-worker.service"])
    add_smbios(root, ["appcore:role=REPORT", "appcore:hostname=Bad_Host"])
    runner = RecordingRunner()
    assert apply(root, runner) == 3
    assert runner.mutations() == []


def test_dry_run_changes_nothing_and_lists_the_plan(tmp_path: Path, capsys) -> None:
    """apply --dry-run prints 'would ...' changes and writes no file."""
    root = make_root(tmp_path, family="workers", services=["notify-sms-worker.service"])
    add_smbios(root, ["appcore:role=NOTIFY_SMS"])
    runner = RecordingRunner()
    assert apply(root, runner, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "would enable notify-sms-worker.service" in out
    assert not (root / "run/appcore/state.json").exists()
    assert not (root / "etc/systemd/system").exists()
    assert runner.mutations() == []


def test_status_shows_role_source_and_changes(tmp_path: Path) -> None:
    """status names the role, its channel and what was done."""
    root = make_root(tmp_path, family="workers", services=["app-worker.service"])
    (root / "proc/cmdline").write_text("appcore.role=APP\n")
    assert apply(root, RecordingRunner()) == 0
    text = render_status(state(root), json.loads((root / "var/lib/appcore/pin.json").read_text()))
    assert "role:    APP (from cmdline: /proc/cmdline)" in text
    assert "done:    enable app-worker.service" in text
    assert text.splitlines()[-1].startswith("pinned:  APP since ")


@pytest.mark.parametrize("code,expected", [(0, "configured"), (3, "failed")])
def test_status_exit_code_follows_the_last_run(tmp_path: Path, code: int, expected: str) -> None:
    """status exits 0 after a configured run and 3 after a failed one."""
    root = make_root(tmp_path, family="workers", services=["app-worker.service"])
    if code == 0:
        (root / "etc/appcore/role").write_text("APP\n")
    apply(root, RecordingRunner())
    assert state(root)["status"] == expected
    assert main(["--root", str(root), "status"]) == code


def test_queued_start_job_is_not_started_again(tmp_path: Path) -> None:
    """At boot an enabled service already has a start job waiting: no start, no change."""
    root = make_root(tmp_path, family="workers", services=["app-worker.service"])
    (root / "etc/appcore/role").write_text("APP\n")
    runner = RecordingRunner(enabled=["app-worker.service"])
    runner.queued.add("app-worker.service")
    assert apply(root, runner) == 0
    assert [a for a in runner.recorded if a[:2] == ["systemctl", "start"]] == []
    assert not [c for c in state(root)["changes"] if c.startswith(("start", "enable"))]


class JobFinishesAfterFirstLook(RecordingRunner):
    """A boot start job that completes right after App-Core's first query about it."""

    def run(self, argv, check=True):  # type: ignore[no-untyped-def]
        result = super().run(argv, check)
        if argv[:2] in (["systemctl", "list-jobs"], ["systemctl", "is-active"]):
            for unit in sorted(self.queued):
                self.queued.discard(unit)
                self.active.add(unit)
        return result


def test_boot_job_finishing_between_queries_is_not_a_change(tmp_path: Path) -> None:
    """A start job that finishes while App-Core looks at it is seen as queued or active."""
    root = make_root(tmp_path, family="workers", services=["app-worker.service"])
    (root / "etc/appcore/role").write_text("APP\n")
    runner = JobFinishesAfterFirstLook(enabled=["app-worker.service"])
    runner.queued.add("app-worker.service")
    assert apply(root, runner) == 0
    assert [a for a in runner.recorded if a[:2] == ["systemctl", "start"]] == []
    assert not [c for c in state(root)["changes"] if c.startswith("start")]


def test_status_after_failure_shows_the_error(tmp_path: Path) -> None:
    """After a failed run, status shows the error and 'done: nothing', not 'already in place'."""
    root = make_root(tmp_path, family="workers")
    (root / "etc/appcore/role").write_text("NOPE\n")
    assert apply(root, RecordingRunner()) == 3
    text = render_status(state(root), None)
    assert "error:   unknown role 'NOPE' from etc (/etc/appcore/role)" in text
    assert "done:    nothing\n" in text
