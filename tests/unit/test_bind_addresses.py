"""Every listener a build starts is on 127.0.0.1: Packer's HTTP server (it serves the kickstart
with the GRUB password hash), QEMU's SSH forwards, and any socket or server the code opens."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import hcl2

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = sorted(p for d in ("packer", "standin") for p in (REPO / d).rglob("*.pkr.hcl"))
# The build side: the package and the task file (App-Core runs inside the VMs, not here).
SOURCES = sorted((REPO / "imagefactory").rglob("*.py")) + [REPO / "tasks.py"]
LOOPBACK = "127.0.0.1"
# Calls whose first argument is the address a server listens on.
SERVER_CALLS = frozenset(
    {
        "bind",
        "HTTPServer",
        "ThreadingHTTPServer",
        "TCPServer",
        "ThreadingTCPServer",
        "UDPServer",
        "create_server",
        "start_server",
        "make_server",
    }
)


def _unquote(value: object) -> object:
    """python-hcl2 keeps the quotes of a string literal; an expression stays `${...}`."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def packer_sources(template: Path) -> dict[str, dict[str, object]]:
    """Each `source "TYPE" "NAME"` block of a template, as TYPE.NAME -> its arguments."""
    doc = hcl2.loads(template.read_text())
    found: dict[str, dict[str, object]] = {}
    for block in doc.get("source", []):
        for kind, named in block.items():
            for name, body in named.items():
                found[f"{kind.strip(chr(34))}.{name.strip(chr(34))}"] = body
    return found


def template_problems(template: Path) -> list[str]:
    """What in one template listens anywhere but on 127.0.0.1."""
    problems = []
    for source, body in packer_sources(template).items():
        serves = "http_directory" in body or "http_content" in body
        if serves and _unquote(body.get("http_bind_address")) != LOOPBACK:
            problems.append(
                f"{template.name} {source}: serves files over HTTP; "
                f'http_bind_address is {body.get("http_bind_address")!r}, not "{LOOPBACK}"'
            )
        for key, value in body.items():
            if key.endswith("_bind_address") and _unquote(value) != LOOPBACK:
                problems.append(f"{template.name} {source}: {key} is {value!r}")
    problems += forward_problems(template.name, template.read_text())
    return problems


def forward_problems(where: str, text: str) -> list[str]:
    """QEMU user-network port forwards that do not name 127.0.0.1 as the host address."""
    return [
        f"{where}: {m.group(0)}"
        for m in re.finditer(r"hostfwd=tcp:([^:\-]*):", text)
        if m.group(1) != LOOPBACK
    ]


def _address_literal(node: ast.expr) -> str | None:
    """The host of an address argument written as a literal: "h" or ("h", port)."""
    if isinstance(node, ast.Tuple) and node.elts:
        node = node.elts[0]
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def server_problems(where: str, source: str) -> list[str]:
    """Server or bind calls in `source` whose address is not the literal 127.0.0.1."""
    problems = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name not in SERVER_CALLS:
            continue
        host = _address_literal(node.args[0]) if node.args else None
        if host != LOOPBACK:
            problems.append(f"{where}:{node.lineno}: {name}(...) listens on {host!r}")
    return problems


def test_templates_are_found() -> None:
    """The templates this file checks include the install template, the one that serves."""
    assert "install-ol8.pkr.hcl" in [t.name for t in TEMPLATES]


def test_every_packer_listener_is_on_loopback() -> None:
    """A template that serves files sets http_bind_address = "127.0.0.1"; forwards too."""
    assert [p for t in TEMPLATES for p in template_problems(t)] == []


def test_a_template_serving_on_every_interface_is_caught(tmp_path: Path) -> None:
    """The check fails on the install template as it was before (no http_bind_address)."""
    text = (REPO / "packer/install-ol8.pkr.hcl").read_text()
    old = tmp_path / "old.pkr.hcl"
    old.write_text(re.sub(r"\n\s*http_bind_address\s*=.*", "", text))
    assert template_problems(old) == [
        "old.pkr.hcl qemu.install: serves files over HTTP; "
        'http_bind_address is None, not "127.0.0.1"'
    ]


def test_a_forward_on_every_interface_is_caught() -> None:
    assert forward_problems("x", '["-netdev", "user,id=u,hostfwd=tcp::2222-:22"]') == [
        "x: hostfwd=tcp::"
    ]


def test_every_server_the_code_starts_is_on_loopback() -> None:
    """Sockets bound and servers started by the build code listen on 127.0.0.1 only."""
    problems = []
    for path in SOURCES:
        text = path.read_text()
        problems += server_problems(str(path.relative_to(REPO)), text)
        problems += forward_problems(str(path.relative_to(REPO)), text)
    assert problems == []


def test_the_code_scan_sees_the_bind_that_exists() -> None:
    """The scan is not blind: it finds guest/vm.py's free-port bind and reads its address."""
    text = (REPO / "imagefactory/guest/vm.py").read_text()
    assert server_problems("vm.py", text.replace('"127.0.0.1", 0', '"0.0.0.0", 0')) == [
        "vm.py:44: bind(...) listens on '0.0.0.0'"
    ]


def test_a_server_on_every_interface_is_caught() -> None:
    source = (
        'import http.server\nhttp.server.ThreadingHTTPServer(("", 8000), H)\nHTTPServer(addr, H)\n'
    )
    assert server_problems("s.py", source) == [
        "s.py:2: ThreadingHTTPServer(...) listens on ''",
        "s.py:3: HTTPServer(...) listens on None",
    ]
