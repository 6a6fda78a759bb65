"""What a run leaves behind for a person: a summary table, plots and an image sheet.

Everything is drawn from the run folder's tables (`slots.csv`, `requests.csv`, `users.csv`), so
an interrupted run gets its report too, and a report can be redrawn later. The image sheet needs
the requests themselves (a generated image is not in the tables): `SheetSampler` keeps the last
few finished requests during the run.

Plots use matplotlib's Agg canvas directly (`Figure` + `FigureCanvasAgg`): no display, no pyplot
state, nothing set at import. matplotlib is imported when a plot is drawn.

Files written into the run folder:
    qoe_by_persona.png   QoE over time by persona type (the trait that stands out most)
    energy.png           GPU, radio and phone energy per slot, with the energy budget
    latency.png          where the waiting time goes: slot wait, GPU queue, denoising, radio, phone
    learning_curve.png   reward and losses per episode, only when a learner ran
    image_sheet.png      recent requests: image (or a placeholder), prompt, steps, the user's feedback
"""

from __future__ import annotations

import math
import statistics
import textwrap
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from rich.table import Table

from agents.persona import TRAITS
from scenarios.tables import RunFolder, read_table
from world.config import LEARNER_NAMES
from world.files import replacing

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from agents.request import ImageRequest
    from world.city import CityBlock

PLACEHOLDER = "image not generated\n(render: profile)"
# a persona's type: its most pronounced trait and which way (see agents/persona.py, TRAIT_BEHAVIOUR)
TYPE_NAMES = {
    ("openness", True): "curious (+O)", ("openness", False): "conventional (-O)",
    ("conscientiousness", True): "meticulous (+C)", ("conscientiousness", False): "easy-going (-C)",
    ("extraversion", True): "expressive (+E)", ("extraversion", False): "reserved (-E)",
    ("agreeableness", True): "lenient (+A)", ("agreeableness", False): "critical (-A)",
    ("neuroticism", True): "anxious (+N)", ("neuroticism", False): "calm (-N)",
}
AVERAGE = "average"
LATENCY_PARTS = ("slot wait", "GPU queue", "denoising", "radio", "phone steps")


# Student t quantile for a two-sided 95% interval, by degrees of freedom (1.96 beyond)
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def ci95(values: Sequence[float]) -> float:
    """Half-width of the 95% confidence interval of the mean (Student t over seeds); NaN below 2 values."""
    if len(values) < 2:
        return math.nan
    return T95.get(len(values) - 1, 1.96) * statistics.stdev(values) / math.sqrt(len(values))




def num(value: str | None) -> float:
    """A CSV cell as a float; NaN when empty or not a number."""
    try:
        return float(value) if value not in (None, "", "None") else math.nan
    except ValueError:
        return math.nan


def persona_type(traits: Mapping[str, float], margin: float = 0.15) -> str:
    """The persona's most pronounced trait and its direction; 'average' when none is `margin` from 0.5."""
    trait = max(TRAITS, key=lambda t: abs(traits[t] - 0.5))
    if abs(traits[trait] - 0.5) < margin:
        return AVERAGE
    return TYPE_NAMES[(trait, traits[trait] > 0.5)]


def user_types(users: list[dict[str, str]]) -> dict[str, str]:
    """user_id -> persona type, from users.csv rows."""
    return {u["user_id"]: persona_type({t: num(u[t]) for t in TRAITS}) for u in users}


# --- plots ----------------------------------------------------------------------------------------


def new_figure(width_in: float, height_in: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: Path) -> Path:
    with replacing(path) as tmp:
        fig.savefig(tmp)
    return path


def plot_qoe_by_persona(requests: list[dict[str, str]], users: list[dict[str, str]], path: Path,
                        run_s: float, bins: int = 12, most: int = 6) -> Path:
    """QoE over simulated time, one line per persona type (the `most` commonest; the rest as 'other')."""
    types = user_types(users)
    rated = [(num(r["feedback_s"]), num(r["qoe"]), types.get(r["user_id"], AVERAGE)) for r in requests]
    rated = [(t, q, k) for t, q, k in rated if not math.isnan(q)]
    fig = new_figure(8, 4.5)
    ax = fig.add_subplot()
    ax.set_xlabel("simulated time, s")
    ax.set_ylabel("QoE (0-1)")
    ax.set_ylim(-0.02, 1.02)
    if not rated:
        ax.set_title("QoE over time by persona type")
        ax.text(0.5, 0.5, "no ratings in this run\n(feedback.mode: silent, or nothing was rated yet)",
                ha="center", va="center", transform=ax.transAxes, color="0.4")
        return save_figure(fig, path)
    counts: dict[str, int] = {}
    for _, _, k in rated:
        counts[k] = counts.get(k, 0) + 1
    keep = sorted(counts, key=lambda k: -counts[k])[:most]
    edges = np.linspace(0.0, max(run_s, max(t for t, _, _ in rated)), bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    groups = {k: [(t, q) for t, q, g in rated if g == k] for k in keep}
    other = [(t, q) for t, q, g in rated if g not in keep]
    if other:
        groups["other"] = other
    for name, points in groups.items():
        t = np.array([p[0] for p in points])
        q = np.array([p[1] for p in points])
        which = np.clip(np.digitize(t, edges) - 1, 0, bins - 1)
        means = [q[which == b].mean() if np.any(which == b) else np.nan for b in range(bins)]
        ax.plot(centres, means, marker="o", label=f"{name} ({len(points)})")
    all_q = np.array([q for _, q, _ in rated])
    ax.axhline(float(all_q.mean()), color="0.3", linestyle="--", linewidth=1, label=f"all ({len(all_q)})")
    ax.set_title(f"QoE over time by persona type (mean per {edges[1] - edges[0]:.0f} s)")
    ax.legend(fontsize=8, loc="lower left", ncol=2)
    return save_figure(fig, path)


def plot_energy(slots: list[dict[str, str]], path: Path, budget_j: float) -> Path:
    """Energy per slot; see `energy_figure`."""
    return save_figure(energy_figure(slots, budget_j), path)


def energy_figure(slots: list[dict[str, str]], budget_j: float) -> Figure:
    """Energy per slot in two panels: above, what the service's budget covers (GPU and radio, stacked) against
    the budget; below, the phones' own denoising energy, which the users' batteries pay outside the budget."""
    fig = new_figure(8, 5.5)
    service, phones = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    t = np.array([num(s["time_s"]) for s in slots])
    parts = {name: np.nan_to_num([num(s[col]) for s in slots]) for name, col in (("GPU", "gpu_energy_j"),
                                                                                  ("radio", "tx_energy_j"))}
    phone = np.nan_to_num([num(s["device_energy_j"]) for s in slots])
    if len(t):
        service.stackplot(t, *parts.values(), labels=[f"{k} ({_energy(v.sum())})" for k, v in parts.items()],
                          step="pre", alpha=0.8)
        service.axhline(budget_j, color="red", linestyle="--", linewidth=1, label=f"budget {budget_j:g} J/slot")
        over = sum(1 for s in slots if num(s["over_budget_j"]) > 0)
        service.set_title(f"Service energy per slot, GPU + radio ({over} of {len(slots)} slots over budget)")
        service.legend(fontsize=8, loc="upper left")
        phones.stackplot(t, phone, labels=[f"phones ({_energy(phone.sum())})"], step="pre", alpha=0.8,
                         colors=["tab:green"])
        phones.set_title("Phones' own denoising steps (the users' batteries, outside the budget)", fontsize=9)
        phones.legend(fontsize=8, loc="upper left")
    service.set_ylabel("J per slot")
    phones.set_ylabel("J per slot")
    phones.set_xlabel("simulated time, s")
    return fig


def _energy(joules: float) -> str:
    return f"{joules / 1e3:,.1f} kJ" if joules >= 1e4 else f"{joules:,.0f} J"


def latency_parts(r: Mapping[str, str]) -> dict[str, float] | None:
    """Where one request's wait went, s; None for a request not delivered."""
    issued, allocated, delivered = num(r["issued_s"]), num(r["allocated_s"]), num(r["delivered_s"])
    if math.isnan(delivered):
        return None
    on_gpu = num(r["server_steps"]) > 0
    started, finished, tx = num(r["started_s"]), num(r["finished_s"]), num(r["tx_s"])
    sent = finished if on_gpu else allocated
    return {"slot wait": allocated - issued,
            "GPU queue": started - allocated if on_gpu else 0.0,
            "denoising": finished - started if on_gpu else 0.0,
            "radio": tx,
            "phone steps": max(0.0, delivered - sent - tx)}


def waits_s(requests: list[dict[str, str]]) -> list[float]:
    """Each delivered request's wait from asking to holding the image, s."""
    return [sum(p.values()) for p in map(latency_parts, requests) if p is not None]


def rated_qoe(requests: list[dict[str, str]]) -> list[float]:
    """The QoE of each validly rated request, 0-1."""
    return [num(r["qoe"]) for r in requests if r["feedback_valid"] == "True" and not math.isnan(num(r["qoe"]))]


def plot_latency(requests: list[dict[str, str]], path: Path) -> Path:
    """Mean latency breakdown, all requests and per GPU server, as stacked horizontal bars."""
    fig = new_figure(8, 3.8)
    ax = fig.add_subplot()
    rows: dict[str, list[dict[str, float]]] = {"all requests": []}
    for r in requests:
        parts = latency_parts(r)
        if parts is None:
            continue
        rows["all requests"].append(parts)
        rows.setdefault(f"on {r['server']}" if r["server"] else "phone only", []).append(parts)
    if len(rows) == 2:           # a single server: its bar repeats 'all requests'
        rows = {"all requests": rows["all requests"]}
    labels = [f"{k} ({len(v)})" for k, v in rows.items()]
    left = np.zeros(len(rows))
    for part in LATENCY_PARTS:
        means = np.array([np.mean([p[part] for p in v]) if v else 0.0 for v in rows.values()])
        ax.barh(labels, means, left=left, label=f"{part}")
        left += means
    waits = [sum(p.values()) for p in rows["all requests"]]
    title = "Where the wait goes (mean per request)"
    if waits:
        title += f": median {np.median(waits):.2f} s, 95th percentile {np.percentile(waits, 95):.2f} s"
    else:
        ax.text(0.5, 0.5, "no request was delivered", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("seconds (simulated)")
    ax.invert_yaxis()
    ax.legend(fontsize=8, ncol=len(LATENCY_PARTS), loc="upper center", bbox_to_anchor=(0.5, -0.25))
    return save_figure(fig, path)


def plot_learning_curve(history: Sequence[Mapping[str, float]], path: Path) -> Path:
    """Reward per episode and, on a second axis, each loss the learner reports.

    Args:
        history: one mapping per episode: 'episode', 'reward', and any losses by name ('actor_loss', ...).
    """
    fig = new_figure(8, 4.5)
    ax = fig.add_subplot()
    episodes = [h["episode"] for h in history]
    ax.plot(episodes, [h["reward"] for h in history], marker="o", color="tab:blue", label="reward")
    ax.set_xlabel("episode")
    ax.set_ylabel("reward (total QoE - penalties)")
    losses = sorted({k for h in history for k in h} - {"episode", "reward"})
    if losses:
        ax2 = ax.twinx()
        for name in losses:
            ax2.plot(episodes, [h.get(name, math.nan) for h in history], linestyle="--", label=name)
        ax2.set_ylabel("loss")
        ax2.legend(fontsize=8, loc="upper right")
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title("Learning curve")
    return save_figure(fig, path)


# --- image sheet ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SheetCell:
    """One cell of the image sheet.

    Attributes:
        prompt: what the user asked for.
        steps: denoising steps, as shown (e.g. '50 (GPU 50, phone 0)').
        feedback: what the user said, or why nothing was said.
        rating: e.g. '4/5', or '-'.
        note: a line of measured attributes.
        image: the delivered image, an H x W x 3 array (uint8 0-255 or float 0-1); None: not generated.
    """

    prompt: str
    steps: str
    feedback: str
    rating: str
    note: str = ""
    image: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.image is not None and (self.image.ndim != 3 or self.image.shape[2] != 3):
            raise ValueError(f"a sheet image must be H x W x 3, got shape {self.image.shape}")

    @classmethod
    def from_request(cls, r: ImageRequest) -> SheetCell:
        """A finished request; its image is read from `r.image` once the world generates one."""
        fb = r.feedback
        if fb is None:
            said, rating = "(silent user)", "-"
        elif fb.valid:
            said, rating = fb.text or f"(no words: rated by the {fb.backend} persona model)", f"{fb.rating}/5"
        else:
            said, rating = f"({'failed' if fb.failed else 'invalid'} answer: {fb.error})", "-"
        shared = r.shared_steps
        steps = f"{r.steps} (GPU {r.server_steps}, phone {r.device_steps}"
        steps += f", shared {shared})" if shared is not None else ")"
        note = f"sharpness {r.sharpness:.2f}, fidelity {r.fidelity:.2f}, wait {r.wait_s:.1f} s"
        return cls(prompt=r.prompt, steps=steps, feedback=f"{r.persona}: {said}", rating=rating, note=note,
                   image=getattr(r, "image", None))


def image_sheet(cells: Sequence[SheetCell], path: Path, columns: int = 4) -> Path:
    """A grid of images (or placeholder tiles) with prompt, steps, rating and feedback under each."""
    n = max(1, len(cells))
    columns = min(columns, n)
    rows = math.ceil(n / columns)
    fig = new_figure(3.3 * columns, 4.6 * rows)
    grid = fig.add_gridspec(rows, columns)
    if not cells:
        ax = fig.add_subplot(grid[0, 0])
        ax.axis("off")
        ax.text(0.5, 0.5, "no request finished in this run", ha="center", va="center")
    for k, cell in enumerate(cells):
        ax = fig.add_subplot(grid[k // columns, k % columns])
        ax.set_xticks([])
        ax.set_yticks([])
        if cell.image is None:
            ax.set_facecolor("0.85")
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            ax.text(0.5, 0.5, PLACEHOLDER, ha="center", va="center", fontsize=9, color="0.35")
        else:
            ax.imshow(cell.image, interpolation="nearest")
        ax.set_aspect("equal")
        caption = "\n".join([*textwrap.wrap(f'"{cell.prompt}"', 40)[:2],
                             f"steps {cell.steps}", cell.note, f"rating {cell.rating}",
                             *textwrap.wrap(cell.feedback, 44)[:4]])
        ax.set_xlabel(caption, fontsize=7, loc="left", linespacing=1.3)
    return save_figure(fig, path)


class SheetSampler:
    """A run observer that keeps the last `size` finished requests for the image sheet.

    Rated requests are preferred: a silent or failed answer is kept only when nothing better came.
    """

    def __init__(self, size: int = 12) -> None:
        self.rated: deque[ImageRequest] = deque(maxlen=size)
        self.other: deque[ImageRequest] = deque(maxlen=size)

    def observe(self, model: CityBlock) -> None:
        for r in model.completed:
            (self.rated if r.feedback is not None and r.feedback.valid else self.other).append(r)

    def cells(self) -> list[SheetCell]:
        """The sheet's cells, oldest first."""
        size = self.rated.maxlen or 0
        chosen = list(self.rated)[-size:]
        if len(chosen) < size:
            chosen = list(self.other)[-(size - len(chosen)):] + chosen
        return [SheetCell.from_request(r) for r in sorted(chosen, key=lambda r: r.request_id)]


# --- the whole report -----------------------------------------------------------------------------


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
    calls, hits = int(num(last["llm_calls"])), int(num(last["cache_hits"]))
    latency = num(last["llm_median_latency_s"])
    rows.append(("language model", f"{calls} calls, {hits} cache hits, "
                                    f"{int(total('feedback_invalid'))} invalid, {int(total('feedback_failed'))} failed"
                                    + ("" if math.isnan(latency) else f", median latency {latency:.2f} s")))
    return rows


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
