"""imagefactory.guest.packer against the real Packer binary (a null source, no VM)."""

from pathlib import Path

from imagefactory.guest import packer
from tests.prereq import require_tool

TEMPLATE = """\
variable "word" { type = string }
source "null" "x" {
  communicator = "none"
}
build {
  sources = ["source.null.x"]
  provisioner "shell-local" {
    inline = ["echo said-${var.word}"]
  }
}
"""


def test_build_works_from_a_workdir_too_deep_for_a_unix_socket(tmp_path: Path) -> None:
    """Packer's plugin sockets do not live under a deep workdir (107-byte socket path limit)."""
    require_tool("packer")
    template = tmp_path / "t.pkr.hcl"
    template.write_text(TEMPLATE)
    deep = tmp_path.joinpath(*["a-rather-long-directory-name"] * 4) / "packer"
    assert len(str(deep)) > 107
    run_ = packer.PackerRun(
        template, {"word": "hi"}, deep, tmp_path / "l.log", tmp_path / "serial.log", "1m"
    )
    packer.build(run_)
    assert "said-hi" in (tmp_path / "l.log").read_text()
