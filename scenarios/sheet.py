"""The image sheet: the last few finished requests, each image (or a placeholder) with its prompt, steps,
rating and what the user said. A generated image is not kept in the run folder's tables, so `SheetSampler`
keeps the requests themselves while the run goes.
"""

from __future__ import annotations

import math
import textwrap
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from scenarios.plots import new_figure, save_figure

if TYPE_CHECKING:
    from agents.request import ImageRequest
    from world.runner import SlotRunner

PLACEHOLDER = "image not generated\n(render: profile)"


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

    def observe(self, run: SlotRunner) -> None:
        for r in run.model.completed:
            (self.rated if r.feedback is not None and r.feedback.valid else self.other).append(r)

    def cells(self) -> list[SheetCell]:
        """The sheet's cells, oldest first."""
        size = self.rated.maxlen or 0
        chosen = list(self.rated)[-size:]
        if len(chosen) < size:
            chosen = list(self.other)[-(size - len(chosen)):] + chosen
        return [SheetCell.from_request(r) for r in sorted(chosen, key=lambda r: r.request_id)]
