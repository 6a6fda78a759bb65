"""The evaluator: its tables, what --write stores for the profile, and its refusals."""

import json
import shutil
import subprocess
import sys

from world.imagegen.evaluate import COLUMNS
from world.imagegen.model import SHIPPED_DIR


def test_evaluator_prints_its_tables_and_writes_a_profile_per_scheduler(tmp_path):
    weights = tmp_path / "weights"
    shutil.copytree(SHIPPED_DIR, weights)
    cmd = [sys.executable, "-m", "world.imagegen.evaluate", "--weights", str(weights), "--captions", "4",
           "--clusters", "1", "--schedulers", "ddim,euler_a", "--threads", "1", "--write"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    header = next(line for line in done.stdout.splitlines() if line.split()[:1] == ["steps"])
    assert header.split() == ["steps", *COLUMNS]
    assert "Quality against ddim steps" in done.stdout and "Quality against euler_a steps" in done.stdout
    assert "similar_kept" in done.stdout and "dissimilar_kept" in done.stdout
    data = json.loads((weights / "quality.json").read_text())
    assert set(data["schedulers"]) == {"ddim", "euler_a"}
    rows = data["schedulers"]["ddim"]["steps"]
    assert [r["steps"] for r in rows] == [2, 5, 10, 15, 25, 50]
    for row in rows:
        assert 0 <= row["fidelity"] <= 1 and 0 <= row["detail"] <= 1
        assert abs(row["quality"] - (row["fidelity"] + row["detail"]) / 2) < 1e-9
    assert data["sharing"][0]["fraction"] == 0.0 and data["sharing"][-1]["fraction"] == 1.0


def test_evaluator_refuses_an_unknown_scheduler():
    cmd = [sys.executable, "-m", "world.imagegen.evaluate", "--schedulers", "ddim,plms"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 2
    assert "unknown plms" in done.stderr and "ddim, dpm++, euler_a, ddpm" in done.stderr
