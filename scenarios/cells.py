"""How the live view writes a figure and fits a table: a QoE's colour, a missing value, a request's row, and
which columns fit a width (left out by importance, never cut, so no figure is shown half).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.cells import cell_len
from rich.text import Text

if TYPE_CHECKING:
    from agents.request import ImageRequest

NONE = "-"               # a value the world does not produce (yet)
QOE_BANDS = ((0.75, "green3"), (0.5, "yellow3"), (0.25, "dark_orange"), (-math.inf, "red3"))


def qoe_style(qoe: float) -> str:
    """Colour of a QoE in [0, 1]; grey when there is none."""
    if math.isnan(qoe):
        return "grey62"
    return next(style for low, style in QOE_BANDS if qoe >= low)


# (name, justification) in the order drawn; fit_columns drops them by their place in the PRIORITY lists


REQUEST_COLUMNS = (("user", "left"), ("prompt", "left"), ("cluster", "right"), ("shared", "right"),
                   ("steps", "right"), ("power", "right"), ("wait", "right"), ("rating", "right"),
                   ("feedback", "left"))
GPU_COLUMNS = (("server", "left"), ("batches", "right"), ("last batch", "right"), ("util", "right"),
               ("queue", "right"), ("energy", "right"), ("clusters", "right"), ("steps saved", "right"))
# columns that may be left out, kept first to last; a column not named is always kept
REQUEST_PRIORITY = ("wait", "steps", "power", "prompt", "shared", "cluster")
GPU_PRIORITY = ("energy", "batches", "last batch", "clusters", "steps saved")
FEEDBACK_MIN = 24       # least characters of the (wrapped) feedback column, a third of the width when wider
PROMPT_MIN = 14         # a prompt is shortened with an ellipsis down to this width (it holds no figure)
def fit_columns(columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[str | Text]], width: int,
                priority: Sequence[str], flexible: int = 0) -> list[tuple[int, str, str, int]]:
    """The columns that fit in `width` characters, each as wide as its widest cell, so no figure is cut.

    Columns named in `priority` are kept in that order while they fit; the others always are;
    `feedback` (when present) takes what is left, at least `flexible` characters.
    Returns (index, name, justify, width) in the columns' order.
    """
    def need(k: int, name: str) -> int:
        w = max([len(name), *(cell_len(r[k].plain if isinstance(r[k], Text) else r[k]) for r in rows)])
        return min(w, 28) if name == "prompt" else w

    widths = {name: need(k, name) for k, (name, _) in enumerate(columns) if name != "feedback"}
    order = [name for name in priority if name in widths]
    kept = [name for name, _ in columns if name not in order]

    def total(names: list[str]) -> int:
        return sum(widths.get(n, flexible) + 2 for n in names)

    for name in order:
        if total(kept + [name]) <= width:
            kept.append(name)
        elif name == "prompt" and total(kept) + PROMPT_MIN + 2 <= width:
            widths[name] = width - total(kept) - 2
            kept.append(name)
    return [(k, name, justify, widths.get(name, flexible)) for k, (name, justify) in enumerate(columns)
            if name in kept]


def request_cells(r: ImageRequest) -> list[str | Text]:
    """One row of the recent-requests table."""
    shared = r.shared_steps
    own = f"{r.server_steps}+{r.device_steps}"
    cluster = r.cluster or None
    fb = r.feedback
    if fb is None:
        rating, said = Text(NONE, style="grey62"), Text("(silent)", style="grey62")
    elif fb.failed:
        rating, said = Text("failed", style="red3"), Text(fb.error, style="red3")
    elif not fb.valid:
        rating, said = Text("invalid", style="dark_orange"), Text(fb.error, style="dark_orange")
    else:
        rating = Text(f"{fb.rating}/5", style=qoe_style(r.qoe))
        said = Text(fb.text) if fb.text else Text(f"(no words: rated by the {fb.backend} persona model)",
                                                   style="grey62")
    return [r.persona, r.prompt, NONE if cluster is None else str(cluster),
            NONE if shared is None else str(shared), own, f"{r.power_w:.2f} W", f"{r.wait_s:.1f} s", rating, said]


def pct(value: float) -> str:
    return NONE if value is None or math.isnan(value) else f"{value:.0%}"
