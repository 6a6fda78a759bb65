"""A run's plots, drawn from its run folder's tables (`slots.csv`, `requests.csv`, `users.csv`).

Plots use matplotlib's Agg canvas directly (`Figure` + `FigureCanvasAgg`): no display, no pyplot
state, nothing set at import. matplotlib is imported when a plot is drawn.

    qoe_by_persona.png   QoE over time by persona type (the trait that stands out most)
    energy.png           GPU, radio and phone energy per slot, with the energy budget
    latency.png          where the waiting time goes: slot wait, GPU queue, denoising, radio, phone
    learning_curve.png   reward and losses per episode, only when a learner ran
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from agents.persona import AVERAGE, TRAITS, persona_type
from scenarios.tables import num
from world.files import replacing

if TYPE_CHECKING:
    from matplotlib.figure import Figure

LATENCY_PARTS = ("slot wait", "GPU queue", "denoising", "radio", "phone steps")


def user_types(users: list[dict[str, str]]) -> dict[str, str]:
    """user_id -> persona type, from users.csv rows."""
    return {u["user_id"]: persona_type({t: num(u[t]) for t in TRAITS}) for u in users}


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
