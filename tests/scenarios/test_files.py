"""Files: shipped model files are verified by sha256, and a write never leaves half a file."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

import scenarios.assemble as assemble_module
from scenarios.loader import SHIPPED, ScenarioError
from scenarios.assemble import resolve_shipped, shipped_sums
from world.files import replacing, write_atomic


def test_the_sums_name_every_shipped_model_file_and_match_it() -> None:
    files = sorted(p.relative_to(SHIPPED).as_posix() for folder in ("checkpoints", "feedback_fits")
                   for p in (SHIPPED / folder).iterdir() if p.is_file())
    sums = shipped_sums()
    assert sorted(sums) == files, "run `make shipped-sums` after changing a shipped model file"
    for rel, digest in sums.items():
        assert hashlib.sha256((SHIPPED / rel).read_bytes()).hexdigest() == digest, rel


@pytest.mark.parametrize("rel", ["checkpoints/gddpg_city_block.pt", "feedback_fits/city_block.json"])
def test_a_changed_shipped_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rel: str) -> None:
    for folder in ("checkpoints", "feedback_fits"):
        shutil.copytree(SHIPPED / folder, tmp_path / folder)
    shutil.copy(SHIPPED / "SHA256SUMS", tmp_path / "SHA256SUMS")
    monkeypatch.setattr(assemble_module, "SHIPPED", tmp_path)
    assert resolve_shipped(rel, "field") == tmp_path / rel
    data = bytearray((tmp_path / rel).read_bytes())
    data[len(data) // 2] ^= 1
    (tmp_path / rel).write_bytes(bytes(data))
    with pytest.raises(ScenarioError, match=rf"field: the shipped file .* has sha256 .*git checkout -- scenarios/{rel}"):
        resolve_shipped(rel, "field")
    # the user's own file of the same content is theirs to use; its loader checks its format
    mine = tmp_path / "mine" / "copy"
    mine.parent.mkdir()
    shutil.copy(tmp_path / rel, mine)
    assert resolve_shipped(str(mine), "field") == mine


def test_an_interrupted_write_leaves_the_old_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "table.csv"
    write_atomic(path, "a,b\n1,2\n")
    with pytest.raises(KeyboardInterrupt):
        with replacing(path) as tmp:
            tmp.write_text("a,b\n3,")
            raise KeyboardInterrupt
    assert path.read_text() == "a,b\n1,2\n"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"], "no temporary file is left behind"
    write_atomic(path, b"new")
    assert path.read_bytes() == b"new"
