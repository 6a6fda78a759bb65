"""Sweeps: every combination of policies x seeds x scenario variants, run as Ray tasks.

`python -m scenarios sweep FILE --seeds 5 --policies gddpg,ddpg,greedy [--set key=value ...]` plans
one run per combination and runs each as a Ray task (a local Ray by default, the cluster at
RAY_ADDRESS when it is set). A `--set` key given more than once is a variant axis: every value is
crossed with every other axis, every policy and every seed.

The sweep folder holds:
    sweep.json       the plan: scenario, seeds, policies, --set values, slots
    <run>/           one ordinary run folder per combination (config.yaml, tables, plots, run.json),
                     plus result.json, its row of the results table, written when it finished
    results.csv      one row per run: what it was (policy, variants, seed), how it ended, what it measured
    summary.csv      one row per policy and variant: the mean over seeds and its 95% confidence interval
    comparison.png   QoE, wait and energy of each policy and variant, mean over seeds with 95% intervals
A run that fails is reported with its error; the others go on. Running the same sweep again skips
every run that finished with the same scenario, and redoes the failed and interrupted ones.

Without Ray installed (`pip install -e .[ray]` adds it) the runs go one after another in this
process, with the same folders and tables. On a cluster, the sweep folder must be on a file
system every node sees (the usual shared home or NFS mount), and aigcsim installed on every node.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from scenarios.loader import ScenarioError
from scenarios.plots import new_figure, save_figure, waits_s
from scenarios.report import ci95, rated_qoe, write_report
from scenarios.sheet import SheetSampler
from scenarios.run import run_scenario
from scenarios.sweep_plan import PlannedRun
from scenarios.tables import RunFolder, csv_text, num, read_table
from world.files import write_atomic
from world.ray_feedback import ensure_ray

# what each run measured, in results.csv after the columns naming the run
MEASURES = ("slots", "simulated_s", "requests_issued", "requests_delivered", "requests_rated", "mean_qoe",
            "mean_wait_s", "p95_wait_s", "energy_j_per_slot", "slots_over_budget", "llm_calls", "cache_hits",
            "feedback_failed", "wall_s")
COMPARED = (("mean_qoe", "QoE (0-1)"), ("mean_wait_s", "mean wait (s)"), ("energy_j_per_slot", "energy per slot (J)"))


@dataclass
class SweepResult:
    """What a sweep did."""

    rows: list[dict[str, Any]]                    # one per planned run, in plan order (results.csv)
    ran: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)    # (run name, error)
    files: list[Path] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# One run


def execute(run: PlannedRun, out: str) -> dict[str, Any]:
    """Run one combination into its folder and return its row of the results table (a Ray task).

    The run folder is replaced; result.json is written last, so a folder with it holds a finished run.
    """
    folder = RunFolder(Path(out))
    folder.result.unlink(missing_ok=True)
    started = time.perf_counter()
    sampler = SheetSampler()
    run_scenario(run.cfg, out=folder.path, force=True, log=lambda line: None, observer=sampler.observe)
    wall_s = time.perf_counter() - started
    write_report(folder.path, sampler.cells(), policy=run.policy,
                 budget_j=run.cfg.base_station.energy_budget_j_per_slot, wall_s=wall_s)
    row = {**identity(run), "status": "finished", "error": "", **measure(folder.path), "wall_s": round(wall_s, 2)}
    write_atomic(folder.result, json.dumps(row, indent=1) + "\n")
    return row


def identity(run: PlannedRun) -> dict[str, Any]:
    """The columns that name a run: policy, each variant's value, seed, folder."""
    return {"run": run.name, "policy": run.policy, **dict(run.variant), "seed": run.seed}


def measure(folder: Path) -> dict[str, Any]:
    """What a run folder's tables say about the run (every measure but wall_s)."""
    slots = read_table(RunFolder(folder).slots)
    requests = read_table(RunFolder(folder).requests)
    total = lambda col: float(sum(np.nan_to_num(num(s[col])) for s in slots))  # noqa: E731
    waits = waits_s(requests)
    qoe = rated_qoe(requests)
    n = len(slots)
    return {
        "slots": n,
        "simulated_s": num(slots[-1]["time_s"]) if slots else 0.0,
        "requests_issued": int(total("requests_issued")),
        "requests_delivered": int(total("requests_delivered")),
        "requests_rated": len(qoe),
        "mean_qoe": round(statistics.fmean(qoe), 4) if qoe else math.nan,
        "mean_wait_s": round(statistics.fmean(waits), 3) if waits else math.nan,
        "p95_wait_s": round(float(np.percentile(waits, 95)), 3) if waits else math.nan,
        "energy_j_per_slot": round(total("service_energy_j") / n, 2) if n else math.nan,
        "slots_over_budget": sum(1 for s in slots if num(s["over_budget_j"]) > 0),
        "llm_calls": int(num(slots[-1]["llm_calls"])) if slots else 0,
        "cache_hits": int(num(slots[-1]["cache_hits"])) if slots else 0,
        "feedback_failed": int(total("feedback_failed")),
    }


def finished_row(run: PlannedRun, folder: Path) -> dict[str, Any] | None:
    """The results row of a run this sweep finished earlier with the same scenario, else None.

    Raises:
        ScenarioError: the folder holds a finished run of another scenario (it is not redone
            without --force, so that no result is replaced by surprise).
    """
    files = RunFolder(folder)
    if not (files.result.is_file() and files.config.is_file()):
        return None
    try:
        done = files.read_json(files.result)
        state = files.read_json(files.state)
        had = yaml.safe_load(files.config.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return None                                  # damaged: redo it
    if state.get("status") != "finished":
        return None
    want = run.cfg.model_dump(mode="json")
    if had != want:
        key = _first_difference(had, want)
        raise ScenarioError(f"{folder} holds a finished run of a different scenario ({key}); this sweep would "
                            f"replace it: pass --force to redo it, or give another --out")
    return {**identity(run), "status": "finished", "error": "", **{k: done.get(k, "") for k in MEASURES}}


def _first_difference(had: Any, want: Any, path: str = "") -> str:
    if isinstance(had, dict) and isinstance(want, dict):
        for key in sorted(set(had) | set(want)):
            if had.get(key) != want.get(key):
                return _first_difference(had.get(key), want.get(key), f"{path}.{key}" if path else str(key))
    return f"{path or 'the scenario'}: {_brief(had)} there, {_brief(want)} now"


def _brief(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def describe(exc: BaseException) -> str:
    """One line of at most 300 characters: the error's type and message."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= 300 else text[:297] + "..."


# ---------------------------------------------------------------------------------------------
# The sweep


def run_sweep(plan: Sequence[PlannedRun], out: Path, *, use_ray: bool = True, workers: int | None = None,
              cpus_per_run: float = 1.0, force: bool = False,
              on_done: Callable[[dict[str, Any], str], None] = lambda row, how: None,
              meta: dict[str, Any] | None = None) -> SweepResult:
    """Run every planned run not finished earlier, then write results.csv, summary.csv and comparison.png.

    Args:
        plan: from `plan_sweep`.
        out: the sweep folder.
        use_ray: run the runs as Ray tasks (else one after another in this process).
        workers: CPUs of the local Ray this starts (default: all); not for a cluster.
        cpus_per_run: CPUs Ray reserves for each run.
        force: redo runs that finished earlier.
        on_done: called with each run's row and how it went ("ran", "failed", or "skipped": it had
            finished earlier), as each ends.
        meta: what sweep.json records about the sweep besides its runs.

    Raises:
        ScenarioError: the sweep folder cannot be used.
        KeyboardInterrupt: the finished runs are kept and the results written; a rerun goes on.
    """
    if out.exists() and not out.is_dir():
        raise ScenarioError(f"--out '{out}' is a file, not a folder; choose another path")
    rows: dict[str, dict[str, Any]] = {}
    todo: list[PlannedRun] = []
    for run in plan:
        row = None if force else finished_row(run, out / run.name)
        if row is None:
            todo.append(run)
        else:
            rows[run.name] = row
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ScenarioError(f"cannot create the sweep folder '{out}': {exc.strerror}; choose another --out") from None
    write_atomic(out / "sweep.json", json.dumps({**(meta or {}), "runs": [r.name for r in plan]}, indent=1) + "\n")
    result = SweepResult(rows=[], skipped=len(rows))
    for row in rows.values():
        on_done(row, "skipped")

    def done(run: PlannedRun, row: dict[str, Any] | None, error: str = "") -> None:
        if row is None:
            row = {**identity(run), "status": "failed", "error": error}
            result.failed.append((run.name, error))
        else:
            result.ran += 1
        rows[run.name] = row
        on_done(row, "failed" if error else "ran")

    try:
        if use_ray and todo:
            _run_on_ray(todo, out, workers, cpus_per_run, done)
        else:
            for run in todo:
                try:
                    row = execute(run, str(out / run.name))
                except Exception as exc:         # the run failed; its error is reported and the others go on
                    done(run, None, describe(exc))
                else:
                    done(run, row)
    finally:
        result.rows = [rows.get(run.name) or {**identity(run), "status": "not run", "error": ""} for run in plan]
        result.files = write_results(result.rows, out)
    return result


def _run_on_ray(todo: Sequence[PlannedRun], out: Path, workers: int | None, cpus_per_run: float,
                done: Callable[..., None]) -> None:
    import ray

    started = ensure_ray(num_cpus=workers)
    task = ray.remote(num_cpus=cpus_per_run, max_retries=0)(execute)
    pending = {task.remote(run, str(out.absolute() / run.name)): run for run in todo}
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            run = pending.pop(ready[0])
            try:
                row = ray.get(ready[0])
            except ray.exceptions.RayTaskError as exc:
                done(run, None, describe(exc.cause or exc))
            except ray.exceptions.RayError as exc:       # the worker died: killed, out of memory, node lost
                done(run, None, describe(exc))
            else:
                done(run, row)
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()


# ---------------------------------------------------------------------------------------------
# Results


def write_results(rows: Sequence[dict[str, Any]], out: Path) -> list[Path]:
    """results.csv (a row per run), summary.csv (mean and 95% interval over seeds) and comparison.png."""
    columns = _columns(rows, ("run", "policy"), ("seed", "status", "error", *MEASURES))
    files = [out / "results.csv", out / "summary.csv"]
    write_atomic(files[0], _csv(rows, columns))
    groups = summarize(rows)
    variant_keys = [c for c in columns if c not in ("run", "policy", "seed", "status", "error", *MEASURES)]
    summary_columns = ("policy", *variant_keys, "runs", *(f"{m}{s}" for m, _ in COMPARED for s in ("", "_ci95")))
    write_atomic(files[1], _csv(groups, summary_columns))
    if any(g["runs"] for g in groups):
        files.append(plot_comparison(groups, variant_keys, out / "comparison.png"))
    return files


def summarize(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per policy and variant: how many runs finished, and each compared measure's mean and 95% CI."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    keys: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        name = {k: v for k, v in row.items() if k not in ("run", "seed", "status", "error", *MEASURES)}
        group = tuple(name.items())
        keys.setdefault(group, name)
        groups.setdefault(group, [])
        if row["status"] == "finished":
            groups[group].append(row)
    summary = []
    for group, members in groups.items():
        entry: dict[str, Any] = {**keys[group], "runs": len(members)}
        for measure_name, _ in COMPARED:
            values = [float(r[measure_name]) for r in members if not math.isnan(float(r[measure_name]))]
            entry[measure_name] = round(statistics.fmean(values), 4) if values else math.nan
            entry[f"{measure_name}_ci95"] = round(ci95(values), 4) if len(values) > 1 else math.nan
        summary.append(entry)
    return summary


def plot_comparison(groups: Sequence[dict[str, Any]], variant_keys: Sequence[str], path: Path) -> Path:
    """A panel per compared measure: a bar per policy (and variant), the mean over seeds with its 95% interval."""
    fig = new_figure(4.2 * len(COMPARED), 4.4)
    policies = list(dict.fromkeys(g["policy"] for g in groups))
    variants = list(dict.fromkeys(tuple(str(g.get(k, "")) for k in variant_keys) for g in groups))
    width = 0.8 / len(variants)
    for i, (measure_name, label) in enumerate(COMPARED):
        ax = fig.add_subplot(1, len(COMPARED), i + 1)
        for j, variant in enumerate(variants):
            members = {g["policy"]: g for g in groups if tuple(str(g.get(k, "")) for k in variant_keys) == variant}
            xs = [p + (j - (len(variants) - 1) / 2) * width for p in range(len(policies))]
            means = [members[p][measure_name] if p in members else math.nan for p in policies]
            cis = [members[p][f"{measure_name}_ci95"] if p in members else math.nan for p in policies]
            name = ", ".join(f"{k}={v}" for k, v in zip(variant_keys, variant)) or None
            ax.bar(xs, np.nan_to_num(means), width=width * 0.9, yerr=np.nan_to_num(cis), capsize=3, label=name)
        ax.set_xticks(range(len(policies)), policies)
        ax.set_title(label)
        ax.grid(axis="y", alpha=0.3)
        if i == 0 and variant_keys:
            ax.legend(fontsize=7)
    runs = sorted({g["runs"] for g in groups})
    count = f"{runs[0]}-{runs[-1]}" if len(runs) > 1 else f"{runs[0]}"
    fig.suptitle(f"mean over seeds ({count} finished runs each); bars: 95% confidence interval")
    return save_figure(fig, path)


def _columns(rows: Sequence[dict[str, Any]], first: Sequence[str], last: Sequence[str]) -> tuple[str, ...]:
    middle = [k for row in rows for k in row if k not in first and k not in last]
    return (*first, *dict.fromkeys(middle), *last)


def _csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    return csv_text(rows, columns, header=True)
