"""What a run leaves behind for a person: its plots (`scenarios/plots.py`), its image sheet
(`scenarios/sheet.py`) and a summary, all drawn from the run folder's tables, so an interrupted run
gets its report too, and a report can be redrawn later.

Files written into the run folder: qoe_by_persona.png, energy.png, latency.png, learning_curve.png
(only when a learner ran) and image_sheet.png.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.table import Table

from agents.persona import AVERAGE
from scenarios.plots import plot_energy, plot_latency, plot_learning_curve, plot_qoe_by_persona, user_types, waits_s
from scenarios.sheet import SheetCell, image_sheet
from scenarios.tables import RunFolder, num, read_table
from world.config import LEARNER_NAMES
from world.feedback_model import LEARNED_BACKEND

# Student t quantile for a two-sided 95% interval, by degrees of freedom (1.96 beyond)
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def ci95(values: Sequence[float]) -> float:
    """Half-width of the 95% confidence interval of the mean (Student t over seeds); NaN below 2 values."""
    if len(values) < 2:
        return math.nan
    return T95.get(len(values) - 1, 1.96) * statistics.stdev(values) / math.sqrt(len(values))


def rated_qoe(requests: list[dict[str, str]]) -> list[float]:
    """The QoE of each validly rated request, 0-1."""
    return [num(r["qoe"]) for r in requests if r["feedback_valid"] == "True" and not math.isnan(num(r["qoe"]))]


@dataclass
class Report:
    """What the report wrote and what it could not draw (and why)."""

    out: Path
    files: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    rows: list[tuple[str, str]] = field(default_factory=list)


def write_report(out: Path, cells: Sequence[SheetCell] | None, policy: str, budget_j: float,
                 learner_history: Sequence[Mapping[str, float]] | None = None, wall_s: float | None = None) -> Report:
    """Draw the plots and the image sheet into the run folder and build the summary.

    Args:
        out: the run folder (its CSV tables are read).
        cells: the image sheet's cells; None: the images are gone (a report redrawn from the folder), the
            sheet is left as it is.
        policy: the base station's policy, by name.
        budget_j: energy budget per slot, J (drawn on the energy plot).
        learner_history: one mapping per episode when a learner ran; None: no learning curve.
        wall_s: wall-clock seconds the run took, for the summary.
    """
    folder = RunFolder(out)
    slots, requests, users = read_table(folder.slots), read_table(folder.requests), read_table(folder.users)
    report = Report(out)
    run_s = num(slots[-1]["time_s"]) if slots else 0.0
    report.files.append(plot_qoe_by_persona(requests, users, out / "qoe_by_persona.png", run_s))
    report.files.append(plot_energy(slots, out / "energy.png", budget_j))
    report.files.append(plot_latency(requests, out / "latency.png"))
    if learner_history:
        report.files.append(plot_learning_curve(learner_history, out / "learning_curve.png"))
    else:
        report.skipped.append(f"learning curve: policy '{policy}' is a learner acting as loaded; a run does not "
                              f"train it (`python -m scenarios.train` does, and draws the curve)"
                              if policy in LEARNER_NAMES else
                              f"learning curve: no learner ran (policy '{policy}' is a heuristic)")
    if cells is not None:
        report.files.append(image_sheet(cells, out / "image_sheet.png"))
    else:
        report.skipped.append("image sheet: drawn while a run goes (its images are not kept in the folder); "
                              "image_sheet.png is left as it was")
    label = policy if learner_history else f"{policy} (not training)" if policy in LEARNER_NAMES else \
        f"{policy} (no learner)"
    report.rows = summary_rows(slots, requests, users, label, wall_s)
    return report


def summary_rows(slots: list[dict[str, str]], requests: list[dict[str, str]], users: list[dict[str, str]],
                 policy: str, wall_s: float | None = None) -> list[tuple[str, str]]:
    """The run in a few lines (label, value), computed from the run folder's tables."""
    if not slots:
        return [("slots", "0 (the run stopped before its first slot)")]
    last = slots[-1]
    total = lambda col: sum(np.nan_to_num(num(s[col])) for s in slots)  # noqa: E731
    waits = waits_s(requests)
    rated = [r for r in requests if r["feedback_valid"] == "True"]
    qoe = rated_qoe(requests)
    n = len(slots)
    time_s = num(last["time_s"])
    rows = [("policy", policy)]
    speed = f", {wall_s:.2f} s wall ({n / wall_s:,.1f} slots/s)" if wall_s else ""
    rows.append(("slots", f"{n} ({time_s:,.0f} s simulated{speed})"))
    # requests the run finished after its last slot (the clock ran on, nobody asked for more): not in slots.csv
    after = [r for r in requests if r.get("finished_slot", "").isdigit() and int(r["finished_slot"]) > n]
    late_delivered = sum(1 for r in after if num(r["delivered_s"]) > time_s)
    late_failed = sum(1 for r in after if r["feedback_failed"] == "True")
    failed = int(total("feedback_failed")) + late_failed
    answered = int(total("requests_rated") - total("feedback_failed")) + len(after) - late_failed
    rows.append(("requests", f"{int(total('requests_issued'))} issued, "
                             f"{int(total('requests_delivered')) + late_delivered} delivered, {answered} answered"
                             + (f" ({len(after)} after the last slot, with no new requests)" if after else "")
                             + (f" ({failed} more got no answer: the model failed)" if failed else "")
                             + f", {int(num(last['in_flight'])) - len(after)} still in flight"))
    if waits:
        rows.append(("wait", f"mean {np.mean(waits):.2f} s, median {np.median(waits):.2f} s, "
                             f"95th percentile {np.percentile(waits, 95):.2f} s"))
        gpu = [num(r["server_steps"]) for r in requests]
        phone = [num(r["device_steps"]) for r in requests]
        rows.append(("steps", f"mean {np.nanmean(gpu) + np.nanmean(phone):.1f} per image "
                              f"(GPU {np.nanmean(gpu):.1f}, phone {np.nanmean(phone):.1f})"))
    if qoe:
        rows.append(("QoE", f"mean {statistics.fmean(qoe):.3f} over {len(qoe)} ratings"))
        types = user_types(users)
        by_type: dict[str, list[float]] = {}
        for r in rated:
            by_type.setdefault(types.get(r["user_id"], AVERAGE), []).append(num(r["qoe"]))
        common = sorted(by_type.items(), key=lambda kv: -len(kv[1]))[:4]
        rows.append(("QoE by persona", ", ".join(f"{k} {statistics.fmean(v):.2f} ({len(v)})" for k, v in common)))
    else:
        rows.append(("QoE", "no ratings (users silent or nothing answered yet)"))
    over = sum(1 for s in slots if num(s["over_budget_j"]) > 0)
    rows.append(("energy", f"GPU {total('gpu_energy_j') / 1e3:,.1f} kJ, radio {total('tx_energy_j'):,.1f} J, "
                           f"phones {total('device_energy_j') / 1e3:,.2f} kJ; {over} of {n} slots over budget"))
    rows.append(("GPU", f"mean utilisation {np.nanmean([num(s['gpu_utilisation']) for s in slots]):.0%}"))
    rows.append(("language model", model_answers(requests)))
    return rows


def model_answers(requests: list[dict[str, str]]) -> str:
    """What the language model answered, request by request (requests.csv): slots.csv counts only to the last
    slot, not the answers given while the run finished, nor, in a resumed run, those before the resume."""
    asked = [r for r in requests if r["feedback_backend"] not in ("", LEARNED_BACKEND)]
    hits = sum(r["feedback_cached"] == "True" for r in asked)
    failed = sum(r["feedback_failed"] == "True" for r in asked)
    invalid = sum(r["feedback_valid"] == "False" and r["feedback_failed"] != "True" for r in asked)
    latencies = [x for x in (num(r["feedback_latency_s"]) for r in asked if r["feedback_cached"] != "True")
                 if not math.isnan(x)]
    return (f"{len(asked) - hits} calls, {hits} cache hits, {invalid} invalid, {failed} failed"
            + (f", median latency {statistics.median(latencies):.2f} s" if latencies else ""))


def summary_table(report: Report, title: str) -> Table:
    """The summary for a terminal."""
    table = Table(title=title, show_header=False, title_justify="left", title_style="bold")
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    for label, value in report.rows:
        table.add_row(label, value)
    for path in report.files:
        table.add_row("wrote", str(path.name))
    for line in report.skipped:
        table.add_row("not drawn", line)
    return table


def summary_lines(report: Report) -> list[str]:
    """The summary as plain ASCII lines, for logs."""
    lines = [f"{label}: {value}" for label, value in report.rows]
    lines += [f"wrote: {p.name}" for p in report.files]
    lines += [f"not drawn: {s}" for s in report.skipped]
    return [ascii_only(line) for line in lines]


def ascii_only(text: str) -> str:
    """Printable ASCII: other characters become '?', control characters a space."""
    return "".join(c if 32 <= ord(c) < 127 else (" " if ord(c) < 32 or ord(c) == 127 else "?") for c in text)
