"""Every table the README quotes from a benchmark has the columns that benchmark prints today."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
SCRIPT = re.compile(r"benchmarks/\w+\.py|world/imagegen/evaluate\.py|python -m world\.imagegen\.evaluate")
FIELD = re.compile(r"\{'([^'{}]+)'\s*:\s*[<>^]?\d*\}")      # a column name in a header f-string: {'wait s':>7}


def quoted_headers() -> list[tuple[str, str, int]]:
    """(script, header line, README line) of every table in a plain or `text` block after a script is named."""
    found = []
    for block in re.finditer(r"```(\w*)\n(.*?)```", README, re.S):
        if block.group(1) not in ("", "text"):
            continue
        named = SCRIPT.findall(README[max(0, block.start() - 3000):block.start()])
        if not named:
            continue
        script = "world/imagegen/evaluate.py" if "evaluate" in named[-1] else named[-1]
        lines = block.group(2).splitlines()
        for i, row in enumerate(lines):
            ruled = i + 1 < len(lines) and re.fullmatch(r"-{10,}", lines[i + 1].strip())
            words_only = not re.search(r"\d", row) and len(row.split()) >= 3 and not re.search(r"[:;,()=]", row)
            if ruled or words_only:
                found.append((script, row, README.count("\n", 0, block.start()) + 2 + i))
    return found


def load(script: str):  # noqa: ANN201
    spec = importlib.util.spec_from_file_location(f"readme_{Path(script).stem}", ROOT / script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module         # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def built_headers(script: str) -> list[str] | None:
    """The headers of the scripts whose columns are built from constants; None for the others."""
    if script == "world/imagegen/evaluate.py":
        from world.imagegen.evaluate import COLUMNS, SHARING_COLUMNS, format_table

        return [format_table([], ("steps", *COLUMNS)), format_table([], SHARING_COLUMNS)]
    if script == "benchmarks/live_training.py":
        return [load(script).header()]
    if script == "benchmarks/persona_fidelity.py":
        bench = load(script)
        return [bench.persona_header([q[0] for q in bench.QUALITIES])]
    return None


def words(text: str) -> str:
    return " ".join(text.split())


def test_the_readme_quotes_a_table_of_every_benchmark_that_prints_one() -> None:
    scripts = {script for script, _, _ in quoted_headers()}
    assert {"benchmarks/gddpg_vs_ddpg.py", "benchmarks/scaling.py", "benchmarks/user_centric.py",
            "benchmarks/interruptions.py", "benchmarks/cooperative_denoising.py", "benchmarks/live_training.py",
            "benchmarks/persona_fidelity.py", "world/imagegen/evaluate.py"} <= scripts


@pytest.mark.parametrize(("script", "header", "line"), quoted_headers(),
                         ids=[f"README:{line}" for _, _, line in quoted_headers()])
def test_a_quoted_header_is_what_its_script_prints(script: str, header: str, line: int) -> None:
    built = built_headers(script)
    if built is not None:
        heads = [words(h.splitlines()[0]) for h in built]
        assert words(header) in heads, f"README line {line}: {script} prints none of these headers now: {heads}"
        return
    # the script writes its header as literal names: the quoted header must be a run of them, in order
    names = FIELD.findall((ROOT / script).read_text())
    rest, used = header.strip(), []
    while rest:
        name = max((n for n in names if rest.startswith(n) and rest[len(n):len(n) + 1] in ("", " ")), key=len,
                   default=None)
        assert name is not None, f"README line {line}: '{rest[:40]}' is no column {script} prints"
        used.append(name)
        rest = rest[len(name):].lstrip()
    runs = [names[k:k + len(used)] for k in range(len(names) - len(used) + 1)]
    assert used in runs, f"README line {line}: columns {used} are not printed together, in this order, by {script}"
