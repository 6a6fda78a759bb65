"""The command line starts light: --help, validate, list, new and reference, and the trainer's --help and refusals,
load no simulator libraries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.shipped import ROOT

HEAVY = ("torch", "mesa", "xllamacpp", "langchain_core", "langchain_openai", "ollama", "openai", "diffusers",
         "transformers", "networkx", "matplotlib")
PROBE = """
import sys
from MODULE import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = sorted({m.split('.')[0] for m in sys.modules} & set(sys.argv[0].split(',')))
print('LOADED:' + ','.join(heavy), file=sys.stderr)
"""


def loaded(module: str, argv: list[str]) -> tuple[list[str], str]:
    """The simulator libraries `python -m <module> <argv>` imported, and what it said on stderr."""
    probe = PROBE.replace("sys.argv[0]", repr(",".join(HEAVY))).replace("MODULE", module)
    done = subprocess.run([sys.executable, "-c", probe, *argv], cwd=ROOT, capture_output=True, text=True, timeout=300)
    return [line for line in done.stderr.splitlines() if line.startswith("LOADED:")], done.stderr


@pytest.mark.parametrize("argv", [["--help"], ["validate", "city_block"], ["list"], ["reference"],
                                  ["run", "--help"], ["sweep", "--help"]])
def test_commands_that_do_not_simulate_import_no_simulator_library(argv: list[str]) -> None:
    libraries, err = loaded("scenarios.cli", argv)
    assert libraries == ["LOADED:"], f"{argv}: {libraries} (stderr: {err[-500:]})"


def test_the_trainers_help_and_a_refused_resume_import_no_simulator_library(tmp_path: Path) -> None:
    libraries, err = loaded("scenarios.train", ["--help"])
    assert libraries == ["LOADED:"], f"--help: {libraries} (stderr: {err[-500:]})"
    libraries, err = loaded("scenarios.train", ["city_block", "--resume", "--out", str(tmp_path / "none")])
    assert "holds no training run" in err and libraries == ["LOADED:"], f"--resume: {libraries} ({err[-500:]})"
