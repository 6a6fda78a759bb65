"""The command line starts light: --help, validate, list, new and reference load no simulator libraries."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.shipped import ROOT

HEAVY = ("torch", "mesa", "xllamacpp", "langchain_core", "langchain_openai", "ollama", "openai", "diffusers",
         "transformers", "networkx", "matplotlib")
PROBE = """
import sys
from scenarios.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = sorted({m.split('.')[0] for m in sys.modules} & set(sys.argv[0].split(',')))
print('LOADED:' + ','.join(heavy), file=sys.stderr)
"""


@pytest.mark.parametrize("argv", [["--help"], ["validate", "city_block"], ["list"], ["reference"],
                                  ["run", "--help"], ["sweep", "--help"]])
def test_commands_that_do_not_simulate_import_no_simulator_library(argv: list[str]) -> None:
    done = subprocess.run([sys.executable, "-c", PROBE.replace("sys.argv[0]", repr(",".join(HEAVY))), *argv],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    loaded = [line for line in done.stderr.splitlines() if line.startswith("LOADED:")]
    assert loaded == ["LOADED:"], f"{argv}: {loaded} (stderr: {done.stderr[-500:]})"
