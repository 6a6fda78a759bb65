"""A training's learning curve: curve.csv, one row per episode (appended as episodes finish), and the
mean of its last fifth, which the trainer and the benchmarks report."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scenarios.tables import csv_text, read_table
from world.files import write_atomic

CURVE_FIELDS = ("episode", "slots", "reward_per_slot", "total_qoe_per_slot", "mean_qoe", "requests_rated",
                "energy_j_per_slot", "over_budget_j_per_slot", "device_energy_j_per_slot", "mean_wait_s",
                "mean_steps", "mean_power_w", "transitions",
                "updates", "qf_loss", "actor_loss", "at_bounds", "wall_s")


def tail_mean(curve: list[dict[str, float]], key: str) -> float:
    """Mean of `key` over the last 20% of the episodes (at least one), NaN rows left out."""
    tail = curve[-max(1, len(curve) // 5):]
    return float(np.nanmean([r[key] for r in tail]))


def read_curve(path: Path) -> list[dict[str, float]]:
    """The episodes of curve.csv as numbers (a last line cut off by a crash is no episode)."""
    return [{k: float(v) for k, v in row.items()} for row in read_table(path)]


def write_curve(path: Path, rows: list[dict[str, float]]) -> None:
    """The whole curve, atomically (used when resuming cuts it back to the checkpoint)."""
    write_atomic(path, csv_text(map(_cells, rows), CURVE_FIELDS, header=True))


def append_curve(path: Path, row: dict[str, float]) -> None:
    """One episode's row, in one write (the header first when the file is new)."""
    text = csv_text([_cells(row)], CURVE_FIELDS, header=not path.is_file())
    with path.open("a", encoding="utf-8") as f:
        f.write(text)
        f.flush()


def _cells(row: dict[str, float]) -> dict[str, str]:
    return {k: f"{v:.6g}" if isinstance(v, float) else str(v) for k, v in row.items()}
