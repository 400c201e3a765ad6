"""The persistence stack, checked without OL8: repository files, pinned versions and key
fingerprints, the variables the scripts use, the key-fingerprint check run for real with gpg
against throwaway keys, the boot-time directory layout against App-Core's catalogue, and the
units and drop-ins with systemd-analyze."""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagefactory.config import LayerDef, load_config
from tests.prereq import missing, require_tool, require_tools

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
STACK = REPO / "packer/scripts/stack-persistence"
SUPPORT = STACK / "support"
REPOS = REPO / "packer/files/repos"
FETCH = SUPPORT / "fetch-verified-key.sh"
DATADIRS = SUPPORT / "persistence-datadirs.sh"
CHECK_INPUTS = STACK / "05-check-persistence-inputs.sh"
DOCS = REPO / "docs/stacks.md"
ROLES_JSON = REPO / "appcore/catalogue/roles.json"
TEMPLATES = REPO / "appcore/catalogue/templates"
REPO_FILES = sorted(REPOS.glob("*.repo"))
# Every shell file of the stack: the layer's scripts and the support scripts they upload.
SHELL = sorted(STACK.rglob("*.sh"))
# Set by the engine for every layer (imagefactory/engine/recipes.py); IF_FAMILY only for per_family.
ENGINE_VARS = {"IF_FILES", "IF_LAYER", "IF_FAMILY"}
SERVICES = {
    "db": "mysql.service",
    "ds": "scylla-server.service",
    "ms": "redpanda.service",
    "mg": "hazelcast.service",
}
FINGERPRINT = re.compile(r"^[0-9A-F]{40}$")
VERSIONS = {
    "IF_PXC_VERSION": r"^8\.0\.\d+-\d+$",
    "IF_SCYLLA_VERSION": r"^\d{4}\.\d+\.\d+$",
    "IF_REDPANDA_VERSION": r"^\d+\.\d+\.\d+$",
    "IF_HAZELCAST_VERSION": r"^5\.\d+\.\d+$",
}


def layer() -> LayerDef:
    return load_config(REPO / "factory.yaml").layers["stack-persistence"]


def layer_env() -> dict[str, str]:
    return {k: str(v) for k, v in layer().variables.items()}


def stage_files(dest: Path) -> Path:
    """The layer's files as the engine stages them for the guest: each entry of `files:` under
    its base name (imagefactory/engine/recipes.py): $IF_FILES/repos/..., $IF_FILES/support/..."""
    for path in layer().files:
        (shutil.copytree if path.is_dir() else shutil.copy2)(path, dest / path.name)
    return dest


def script_vars(path: Path) -> set[str]:
    return set(re.findall(r"\$\{?!?(IF_[A-Z0-9_]+)", path.read_text())) | set(
        re.findall(r"\bneed (IF_[A-Z0-9_]+)", path.read_text())
    )


def operator_pinned() -> set[str]:
    """Variables docs/stacks.md lists as pinned by the build-host operator (one per row)."""
    text = DOCS.read_text()
    section = text.split("### Keys the operator pins", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(IF_[A-Z0-9_]+)` \|", section, flags=re.M))


def parse_repo(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(path.read_text(), source=str(path))
    return parser


# --- repository files --------------------------------------------------------------------


def test_there_is_one_repo_file_per_vendor() -> None:
    """packer/files/repos holds exactly the four vendors' .repo files."""
    assert [p.name for p in REPO_FILES] == [
        "hazelcast.repo",
        "percona.repo",
        "redpanda.repo",
        "scylla.repo",
    ]


@pytest.mark.parametrize("path", REPO_FILES, ids=lambda p: p.name)
def test_repo_file_checks_signatures_and_ships_disabled(path: Path) -> None:
    """Each section: https baseurl, gpgcheck=1, enabled=0, explicit repo_gpgcheck, local key."""
    repo = parse_repo(path)
    assert repo.sections()
    for name in repo.sections():
        section = repo[name]
        assert section["baseurl"].startswith("https://"), name
        assert section["gpgcheck"] == "1", name
        assert section["enabled"] == "0", name
        assert section["repo_gpgcheck"] in ("0", "1"), name
        keys = section["gpgkey"].split()
        assert keys, name
        for key in keys:
            assert re.fullmatch(r"file:///etc/pki/rpm-gpg/RPM-GPG-KEY-imagefactory-[a-z-]+", key)


def test_repo_keys_are_the_keys_the_layer_verifies() -> None:
    """The gpgkey files the .repo files name are exactly those 30-add-vendor-repos.sh writes."""
    named = {
        key.rsplit("RPM-GPG-KEY-imagefactory-", 1)[1]
        for path in REPO_FILES
        for section in parse_repo(path).values()
        for key in section.get("gpgkey", "").split()
    }
    text = (STACK / "30-add-vendor-repos.sh").read_text()
    imported = set(re.findall(r'^import_key "\$IF_\w+" "\$IF_\w+" ([a-z-]+)$', text, flags=re.M))
    assert named == imported == {"percona", "scylla", "redpanda", "hazelcast", "hazelcast-repo"}


def test_layer_installs_every_repo_file() -> None:
    """30-add-vendor-repos.sh installs each file of packer/files/repos, and no other."""
    text = (STACK / "30-add-vendor-repos.sh").read_text()
    loop = re.search(r"^for repo in ([a-z ]+); do$", text, flags=re.M)
    assert loop
    assert sorted(loop.group(1).split()) == sorted(p.stem for p in REPO_FILES)


def test_enabled_repositories_exist() -> None:
    """Every --enablerepo= of the scripts names a section of our .repo files (or OL8's EPEL)."""
    sections = {name for path in REPO_FILES for name in parse_repo(path).sections()}
    used = {
        repo
        for path in SHELL
        for group in re.findall(r"--enablerepo=([\w,.-]+)", path.read_text())
        for repo in group.split(",")
    }
    assert used - {"ol8_developer_EPEL"} == sections


def test_scylla_repo_is_the_pinned_stream() -> None:
    """scylla.repo's paths are the release stream of IF_SCYLLA_VERSION (2026.1.0 -> 2026.1)."""
    stream = layer_env()["IF_SCYLLA_VERSION"].rsplit(".", 1)[0]
    for section in parse_repo(REPOS / "scylla.repo").values():
        if "baseurl" in section:
            assert f"/scylladb-{stream}/" in section["baseurl"]


def test_percona_repo_is_pxc_80() -> None:
    """percona.repo is the pxc-80 repository, matching the 8.0 pin of IF_PXC_VERSION."""
    assert layer_env()["IF_PXC_VERSION"].startswith("8.0.")
    url = parse_repo(REPOS / "percona.repo")["percona-pxc-80"]["baseurl"]
    assert url.startswith("https://repo.percona.com/pxc-80/yum/release/")


# --- pinned versions, key URLs and fingerprints -----------------------------------------


@pytest.mark.parametrize("name", sorted(VERSIONS))
def test_version_is_pinned_and_well_formed(name: str) -> None:
    """Each product's version is pinned in factory.yaml as an exact version."""
    assert re.fullmatch(VERSIONS[name], layer_env()[name])


def test_every_declared_fingerprint_is_40_hex_digits() -> None:
    """Every *_FPR variable in the layer is a full upper-case v4 fingerprint, not a key ID."""
    fprs = {k: v for k, v in layer_env().items() if k.endswith("_FPR")}
    assert fprs
    bad = {k: v for k, v in fprs.items() if not FINGERPRINT.fullmatch(v)}
    assert bad == {}


def test_every_key_url_is_https() -> None:
    """Every *_KEY_URL variable is an https URL."""
    urls = {k: v for k, v in layer_env().items() if k.endswith("_KEY_URL")}
    assert len(urls) == 5
    assert all(v.startswith("https://") for v in urls.values())


def test_every_key_url_has_its_fingerprint() -> None:
    """Each key URL has a fingerprint: in factory.yaml, or documented as operator-pinned."""
    env = layer_env()
    pinned = operator_pinned()
    for url_var in (k for k in env if k.endswith("_KEY_URL")):
        fpr_var = url_var.removesuffix("_URL") + "_FPR"
        assert fpr_var in env or fpr_var in pinned, fpr_var


def test_operator_pinned_fingerprints_are_required_not_placeholders() -> None:
    """An operator-pinned fingerprint has no value in factory.yaml and is required by 05-."""
    pinned = operator_pinned()
    assert pinned
    assert all(v.endswith("_FPR") for v in pinned)
    assert pinned.isdisjoint(layer_env())
    required = set(re.findall(r"^need (IF_\w+_FPR) ", CHECK_INPUTS.read_text(), flags=re.M))
    assert pinned <= required


def test_no_placeholder_values_in_the_layer() -> None:
    """No variable of the layer is a placeholder (REPLACE, TODO, XXX, empty)."""
    for name, value in layer_env().items():
        assert value.strip(), name
        assert not re.search(r"REPLACE|TODO|XXX|CHANGEME", value, flags=re.I), name


# --- what the scripts use -----------------------------------------------------------------


def test_layer_lists_every_numbered_script_in_order() -> None:
    """factory.yaml runs every NN-*.sh of the stack's directory, in file-name order."""
    listed = [p.name for p in layer().scripts]
    on_disk = sorted(p.name for p in STACK.glob("[0-9][0-9]-*.sh"))
    assert listed == on_disk


@pytest.mark.parametrize("path", SHELL, ids=lambda p: str(p.relative_to(STACK)))
def test_script_uses_only_declared_variables(path: Path) -> None:
    """IF_* variables a script reads are the layer's, the engine's, or operator-pinned ones."""
    allowed = set(layer_env()) | ENGINE_VARS | operator_pinned()
    assert script_vars(path) - allowed == set()


def test_check_inputs_covers_every_variable() -> None:
    """05-check-persistence-inputs.sh validates every IF_* variable the other scripts read."""
    used = set().union(*(script_vars(p) for p in SHELL if p != CHECK_INPUTS)) - ENGINE_VARS
    checked = set(re.findall(r"^need (IF_\w+) ", CHECK_INPUTS.read_text(), flags=re.M))
    assert used <= checked


def test_staged_file_references_resolve(tmp_path: Path) -> None:
    """Every "$IF_FILES/..." path in the scripts exists among the files the engine uploads."""
    staged = stage_files(tmp_path)
    refs = {
        ref
        for path in SHELL
        for ref in re.findall(r"\$IF_FILES/([\w./@-]+)", path.read_text())
        if "$" not in ref
    }
    assert refs
    missing = sorted(ref for ref in refs if not (staged / ref).exists())
    assert missing == []


def test_check_inputs_refuses_missing_fingerprints(tmp_path: Path) -> None:
    """05- fails while the operator-pinned fingerprints are unset and names each of them."""
    env = {"PATH": os.environ["PATH"], "IF_FILES": str(stage_files(tmp_path)), **layer_env()}
    proc = subprocess.run(["bash", str(CHECK_INPUTS)], env=env, capture_output=True, text=True)
    assert proc.returncode == 1
    for name in operator_pinned():
        assert f"{name} is not set" in proc.stderr


def test_check_inputs_passes_with_every_value_and_catches_a_bad_one(tmp_path: Path) -> None:
    """05- passes once every fingerprint is set, and fails on a malformed version."""
    env = {"PATH": os.environ["PATH"], "IF_FILES": str(stage_files(tmp_path)), **layer_env()}
    env |= dict.fromkeys(operator_pinned(), "0123456789ABCDEF0123456789ABCDEF01234567")
    proc = subprocess.run(["bash", str(CHECK_INPUTS)], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    env["IF_SCYLLA_VERSION"] = "2025.4.1"  # not the stream of scylla.repo
    proc = subprocess.run(["bash", str(CHECK_INPUTS)], env=env, capture_output=True, text=True)
    assert proc.returncode == 1
    assert "scylladb-2025.4 stream" in proc.stderr


# --- the key-fingerprint check, for real ------------------------------------------------


class Keys:
    """Throwaway OpenPGP keys made with gpg in a temporary home (no network, no agent left)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        home.mkdir(mode=0o700)

    def gpg(self, *args: str) -> str:
        batch = ["--batch", "--pinentry-mode", "loopback", "--passphrase", ""]
        cmd = ["gpg", "--homedir", str(self.home), *batch, *args]
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout

    def make(self, uid: str, *, expired: bool = False) -> tuple[Path, str]:
        """An armored public key file and its fingerprint; `expired` dates it to 2020."""
        when = ["--faked-system-time", "20200101T000000"] if expired else []
        self.gpg(*when, "--quick-gen-key", uid, "ed25519", "sign", "1d" if expired else "0")
        listing = self.gpg("--with-colons", "--list-keys", uid)
        fpr = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr"))
        path = self.home.parent / f"{fpr}.asc"
        path.write_text(self.gpg("--armor", "--export", uid))
        return path, fpr

    def close(self) -> None:
        subprocess.run(
            ["gpgconf", "--homedir", str(self.home), "--kill", "gpg-agent"],
            capture_output=True,
            check=False,
        )


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keys]:
    require_tools("gpg", "gpgconf", "curl")
    made = Keys(tmp_path_factory.mktemp("keys") / "gnupg")
    yield made
    made.close()


def fetch(url: str, fpr: str, dest: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(FETCH), url, fpr, str(dest)],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"]},
    )


def test_fetch_keeps_the_pinned_key(keys: Keys, tmp_path: Path) -> None:
    """The key whose fingerprint is pinned is written to DEST unchanged, mode 0644."""
    key, fpr = keys.make("Vendor A <a@example.invalid>")
    dest = tmp_path / "pki/RPM-GPG-KEY-imagefactory-a"
    proc = fetch(key.as_uri(), fpr, dest)
    assert proc.returncode == 0, proc.stderr
    assert dest.read_bytes() == key.read_bytes()
    assert dest.stat().st_mode & 0o777 == 0o644
    assert fpr in proc.stdout


def test_fetch_accepts_a_fingerprint_written_with_spaces_and_lower_case(
    keys: Keys, tmp_path: Path
) -> None:
    """The pinned value may be written as gpg prints it (groups of four, any case)."""
    key, fpr = keys.make("Vendor B <b@example.invalid>")
    spaced = " ".join(fpr[i : i + 4] for i in range(0, 40, 4)).lower()
    assert fetch(key.as_uri(), spaced, tmp_path / "b").returncode == 0


def test_fetch_refuses_a_different_key(keys: Keys, tmp_path: Path) -> None:
    """A key whose fingerprint differs from the pinned one is refused and nothing is written."""
    key, _ = keys.make("Impostor <i@example.invalid>")
    _, other = keys.make("Vendor C <c@example.invalid>")
    dest = tmp_path / "c"
    proc = fetch(key.as_uri(), other, dest)
    assert proc.returncode == 1
    assert "fingerprint mismatch" in proc.stderr
    assert not dest.exists()


def test_fetch_refuses_a_file_with_two_keys(keys: Keys, tmp_path: Path) -> None:
    """A download holding the pinned key plus another one is refused."""
    first, fpr = keys.make("Vendor D <d@example.invalid>")
    second, _ = keys.make("Extra <e@example.invalid>")
    both = tmp_path / "both.asc"
    both.write_text(first.read_text() + second.read_text())
    proc = fetch(both.as_uri(), fpr, tmp_path / "d")
    assert proc.returncode == 1
    assert "holds 2 primary keys" in proc.stderr


def test_fetch_refuses_an_expired_key(keys: Keys, tmp_path: Path) -> None:
    """The pinned key itself, but expired, is refused."""
    key, fpr = keys.make("Old Vendor <o@example.invalid>", expired=True)
    proc = fetch(key.as_uri(), fpr, tmp_path / "o")
    assert proc.returncode == 1
    assert "expired" in proc.stderr


def test_fetch_refuses_something_that_is_not_a_key(tmp_path: Path) -> None:
    """An HTML error page (or any non-key) at the key URL is refused."""
    require_tools("gpg", "curl")
    page = tmp_path / "page.html"
    page.write_text("<html><body>502 Bad Gateway</body></html>\n")
    proc = fetch(page.as_uri(), "0" * 40, tmp_path / "p")
    assert proc.returncode == 1
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize(
    ("url", "fpr", "message"),
    [
        ("http://example.invalid/key", "0" * 40, "only https://"),
        ("https://example.invalid/key", "ABCD1234", "not 40 hex digits"),
        ("https://example.invalid/key", "G" * 40, "not 40 hex digits"),
    ],
)
def test_fetch_refuses_bad_arguments_before_any_download(
    url: str, fpr: str, message: str, tmp_path: Path
) -> None:
    """Plain http and a short or non-hex fingerprint are refused without a download."""
    proc = fetch(url, fpr, tmp_path / "k")
    assert proc.returncode == 1
    assert message in proc.stderr


# --- data directories, App-Core and SELinux -----------------------------------------------


def layout(disk: str) -> list[tuple[str, str, str]]:
    proc = subprocess.run(
        ["bash", str(DATADIRS), "--list", disk], capture_output=True, text=True, check=True
    )
    return [tuple(line.split()) for line in proc.stdout.splitlines()]  # type: ignore[misc]


def test_datadirs_layout_per_disk() -> None:
    """Each disk's directories belong to that product's service user, under its own mount."""
    owners = {
        "db": "mysql:mysql",
        "ds": "scylla:scylla",
        "ms": "redpanda:redpanda",
        "mg": "hazelcast:hazelcast",
    }
    for disk, owner in owners.items():
        rows = layout(disk)
        assert rows
        for path, row_owner, mode in rows:
            assert path.startswith(f"/data/{disk}/")
            assert not path.startswith(f"/data/{disk}/conf")  # App-Core's directory
            assert row_owner == owner
            assert re.fullmatch(r"07[0-5][01]", mode)


def test_datadirs_rejects_an_unknown_disk() -> None:
    """An unknown disk name is a usage error (exit 2), not a silent no-op."""
    proc = subprocess.run(["bash", str(DATADIRS), "xx"], capture_output=True, text=True)
    assert proc.returncode == 2


def test_datadirs_refuses_an_unmounted_disk() -> None:
    """Without the disk mounted, the helper creates nothing on the root filesystem."""
    require_tool("mountpoint")
    if Path("/data/db").exists():
        missing("a host without /data/db", "the test checks that nothing creates it; run elsewhere")
    proc = subprocess.run(["bash", str(DATADIRS), "db"], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "not a mounted filesystem" in proc.stderr
    assert not Path("/data/db").exists()


def created_paths() -> set[str]:
    return {path for disk in SERVICES for path, _, _ in layout(disk)}


def covered(path: str, dirs: set[str]) -> bool:
    return any(path == d or path.startswith(d + "/") for d in dirs)


def test_every_configured_data_path_is_created() -> None:
    """Each /data path the stack configures is a created directory (or inside one), or App-Core's
    conf/ directory."""
    sources = [
        *STACK.glob("[0-9][0-9]-*.sh"),
        *SUPPORT.glob("dropins/*.conf"),
        SUPPORT / "hazelcast-log4j2.properties",
    ]
    paths = {
        p
        for src in sources
        for p in re.findall(r"/data/(?:db|ds|ms|mg)/[\w./-]*\w", src.read_text())
    }
    assert paths
    dirs = created_paths()
    conf = {f"/data/{disk}/conf" for disk in SERVICES}
    assert sorted(p for p in paths if not covered(p, dirs | conf)) == []


def test_appcore_role_templates_use_the_created_directories() -> None:
    """The paths App-Core's role templates render (data_dir=/data/xx) are the ones the stack
    creates, so the image default and the rendered role agree."""
    dirs = created_paths()
    rendered = {
        "mysql.cnf.tmpl": "/data/db",
        "scylla.yaml.tmpl": "/data/ds",
        "redpanda.yaml.tmpl": "/data/ms",
    }
    for name, data_dir in rendered.items():
        text = (TEMPLATES / name).read_text().replace("${data_dir}", data_dir)
        body = "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
        paths = set(re.findall(r"/data/\w+/[\w./-]+", body))
        assert paths, name
        assert sorted(p for p in paths if not covered(p, dirs)) == [], name


def test_selinux_rules_match_appcore_catalogue() -> None:
    """The fcontext rules baked into the image are App-Core's catalogue rules, verbatim (so
    App-Core finds them in place), plus /data itself as var_t."""
    disks = json.loads(ROLES_JSON.read_text())["disks"]
    catalogue = {f"{r['spec']}={r['type']}" for d in disks.values() for r in d["selinux"]}
    text = (STACK / "40-prepare-data-dirs.sh").read_text()
    block = text.split("rules=(", 1)[1].split(")\n", 1)[0]
    baked = set(re.findall(r'"([^"]+)"', block))
    assert baked == catalogue | {"/data=var_t"}


def test_every_catalogue_service_has_a_dropin() -> None:
    """Each persistence service of App-Core's catalogue gets our drop-in for its disk."""
    catalogue = json.loads(ROLES_JSON.read_text())
    services = {
        svc: role["disks"][0]
        for role in catalogue["roles"].values()
        if role["family"] == "persistence"
        for svc in role["services"]
    }
    assert services == {svc: f"DATA_{disk.upper()}" for disk, svc in SERVICES.items()}
    for disk, svc in SERVICES.items():
        text = (SUPPORT / f"dropins/{svc}.conf").read_text()
        assert f"RequiresMountsFor=/data/{disk}\n" in text
        assert f"Requires=imagefactory-datadirs@{disk}.service\n" in text
        assert f"After=imagefactory-datadirs@{disk}.service\n" in text


def test_only_hazelcast_gets_jdk17() -> None:
    """hazelcast's drop-in sets JAVA_HOME to the JDK 17 link; no other drop-in names a JDK."""
    for svc in SERVICES.values():
        text = (SUPPORT / f"dropins/{svc}.conf").read_text()
        body = "\n".join(ln for ln in text.splitlines() if not ln.startswith("#"))
        if svc == "hazelcast.service":
            assert "Environment=JAVA_HOME=/usr/lib/jvm/jre-17\n" in body + "\n"
        else:
            assert "jvm" not in body and "JAVA" not in body


def test_hazelcast_logs_leave_usr() -> None:
    """The log4j2 file hazelcast.service selects writes only under /data/mg/logs."""
    text = (SUPPORT / "hazelcast-log4j2.properties").read_text()
    files = re.findall(
        r"^appender\.\w+\.(?:fileName|filePattern|strategy\.\w+\.basePath)"
        r"\s*=\s*(\S+)",
        text,
        flags=re.M,
    )
    assert len(files) == 3
    assert all(f.startswith("/data/mg/logs/") or f == "/data/mg/logs" for f in files)


# --- units and drop-ins, checked by systemd ----------------------------------------------


@pytest.fixture(scope="module")
def unit_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root with stand-in vendor units, our template unit, drop-ins and helper in place."""
    root = tmp_path_factory.mktemp("persistence-root")
    system = root / "etc/systemd/system"
    system.mkdir(parents=True)
    for svc in SERVICES.values():
        (system / svc).write_text(
            f"[Unit]\nDescription=stand-in for the vendor's {svc}\n\n"
            "[Service]\nExecStart=/usr/bin/true\n\n[Install]\nWantedBy=multi-user.target\n"
        )
        dropin = system / f"{svc}.d"
        dropin.mkdir()
        shutil.copy2(SUPPORT / f"dropins/{svc}.conf", dropin / "40-imagefactory.conf")
    shutil.copy2(SUPPORT / "imagefactory-datadirs@.service", system)
    libexec = root / "usr/libexec/imagefactory"
    libexec.mkdir(parents=True)
    shutil.copy2(DATADIRS, libexec / "persistence-datadirs")
    true = root / "usr/bin/true"
    true.parent.mkdir(parents=True)
    true.write_text("#!/bin/sh\nexit 0\n")
    true.chmod(0o755)
    host_units = Path("/usr/lib/systemd/system")
    if host_units.is_dir():
        shutil.copytree(host_units, root / "usr/lib/systemd/system", symlinks=True)
    return root


@pytest.mark.parametrize("unit", [*SERVICES.values(), "imagefactory-datadirs@db.service"])
def test_systemd_accepts_units_and_dropins(unit_root: Path, unit: str) -> None:
    """systemd-analyze verify loads the unit with our drop-in and says nothing about our files."""
    require_tool("systemd-analyze")
    proc = subprocess.run(
        ["systemd-analyze", "verify", f"--root={unit_root}", "--man=no", "--generators=no", unit],
        capture_output=True,
        text=True,
    )
    ours = [
        ln
        for ln in proc.stderr.splitlines()
        if "imagefactory" in ln or "40-imagefactory.conf" in ln
    ]
    assert proc.returncode == 0, proc.stderr
    assert ours == []
