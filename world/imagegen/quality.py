"""How good a generated image is: fidelity to its prompt and how clean it is.

Fidelity reads five attributes off the image:
    shape, foreground colour, background colour   by the trained judge (a CNN);
    size and place                                by geometry: the pixels nearer the
                                                  prompt's foreground colour than its
                                                  background colour form the shape, whose
                                                  area and centroid are matched to those of
                                                  drawn prototypes.
A prompt that leaves size or place open is not judged on it. An image's
fidelity is the share of its prompt's attributes that are right.

Cleanliness: `sharpness` is the 95th percentile of the gradient magnitude
relative to that of drawn images (1 = as crisp as the real thing; a blurry
image scores lower), and `noise` is the median absolute Laplacian (0 for a flat
image; grainy images score higher).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from world.imagegen import shapes
from world.imagegen.shapes import COLOURS, PLACES, SIZES, Scene

ATTRIBUTES = ("shape", "fg", "bg", "size", "place")


@lru_cache(maxsize=1)
def _prototypes() -> dict[tuple[str, str, str], tuple[float, float, float]]:
    """(shape, size, place) -> (mean area, mean centroid x, mean centroid y) of drawn shapes, px."""
    rng = np.random.default_rng(0)
    out = {}
    for shape in shapes.SHAPES:
        for size in SIZES:
            for place in PLACES:
                scene = Scene(shape, "white", "black", size, place)
                masks = shapes.draw([scene] * 16, rng)[:, 0] > 0
                out[shape, size, place] = _geometry(masks)
    return out


def _geometry(masks: np.ndarray) -> tuple[float, float, float]:
    yy, xx = np.mgrid[0:masks.shape[-2], 0:masks.shape[-1]]
    area = masks.sum(axis=(-2, -1)).astype(float)
    safe = np.maximum(area, 1)
    cx = (masks * xx).sum(axis=(-2, -1)) / safe
    cy = (masks * yy).sum(axis=(-2, -1)) / safe
    return float(area.mean()), float(cx.mean()), float(cy.mean())


def read_geometry(image: np.ndarray, scene: Scene) -> tuple[str, str]:
    """(size, place) of the shape in `image` (H, W, 3 uint8), assuming the prompt's colours and shape."""
    x = image.astype(float) / 255.0
    fg, bg = np.asarray(COLOURS[scene.fg]), np.asarray(COLOURS[scene.bg])
    mask = ((x - fg) ** 2).sum(-1) < ((x - bg) ** 2).sum(-1)
    area, cx, cy = _geometry(mask)
    protos = _prototypes()
    # size: nearest area in log space; place: nearest centroid among that size's places
    size = min(SIZES, key=lambda s: abs(np.log(max(area, 1.0)) - np.log(protos[scene.shape, s, "centre"][0])))
    place = min(PLACES, key=lambda p: (protos[scene.shape, size, p][1] - cx) ** 2
                + (protos[scene.shape, size, p][2] - cy) ** 2)
    return size, place


@dataclass(frozen=True)
class Verdict:
    """What the judge and the geometry found in one image against its prompt's scene."""

    right: dict[str, bool]          # attribute -> correct (only the prompt's attributes)
    sharpness: float
    noise: float
    seen: str = ""                  # what the judge sees, in words


    @property
    def fidelity(self) -> float:
        """Share of the prompt's attributes that are right, 0-1."""
        return sum(self.right.values()) / len(self.right)

    @property
    def all_right(self) -> bool:
        return all(self.right.values())


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def sharpness_noise(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per image: (sharpness relative to drawn images, median absolute Laplacian)."""
    x = images.astype(float).mean(-1) / 255.0
    gy, gx = np.gradient(x, axis=(1, 2))
    grad = np.hypot(gx, gy).reshape(len(x), -1)
    lap = (x[:, 1:-1, 1:-1] * 4 - x[:, :-2, 1:-1] - x[:, 2:, 1:-1] - x[:, 1:-1, :-2] - x[:, 1:-1, 2:])
    return np.percentile(grad, 95, axis=1) / _reference_sharpness(), np.median(np.abs(lap).reshape(len(x), -1), 1)


@lru_cache(maxsize=1)
def _reference_sharpness() -> float:
    rng = np.random.default_rng(1)
    drawn = ((shapes.draw(shapes.random_scenes(256, rng), rng) + 1) * 127.5).round()
    x = drawn.mean(1) / 255.0
    gy, gx = np.gradient(x, axis=(1, 2))
    return float(np.percentile(np.hypot(gx, gy).reshape(len(x), -1), 95, axis=1).mean())


@torch.no_grad()
def judge(judge_net, images: np.ndarray, scenes: Sequence[Scene | None]) -> list[Verdict | None]:
    """Verdicts for images (n, H, W, 3 uint8) against their scenes (None: the prompt names no scene)."""
    if len(images) == 0:
        return []
    logits = judge_net(_to_tensor(images))
    guess = [lg.argmax(1).tolist() for lg in logits]
    sharp, noise = sharpness_noise(images)
    out: list[Verdict | None] = []
    for i, scene in enumerate(scenes):
        if scene is None:
            out.append(None)
            continue
        want = scene.labels
        right = {"shape": guess[0][i] == want[0], "fg": guess[1][i] == want[1], "bg": guess[2][i] == want[2]}
        if scene.size or scene.place:
            size, place = read_geometry(images[i], scene)
            if scene.size:
                right["size"] = size == scene.size
            if scene.place:
                right["place"] = place == scene.place
        seen = (f"a {shapes.COLOUR_NAMES[guess[1][i]]} {shapes.SHAPES[guess[0][i]]} "
                f"on a {shapes.COLOUR_NAMES[guess[2][i]]} background")
        out.append(Verdict(right, float(sharp[i]), float(noise[i]), seen))
    return out


def summarise(verdicts: Sequence[Verdict]) -> dict[str, float]:
    """Accuracy per attribute (over the verdicts that judge it), all-right share, mean sharpness and noise."""
    row: dict[str, float] = {}
    for a in ATTRIBUTES:
        judged = [v.right[a] for v in verdicts if a in v.right]
        row[a] = float(np.mean(judged)) if judged else float("nan")
    row["colours_shape"] = float(np.mean([v.right["shape"] and v.right["fg"] and v.right["bg"] for v in verdicts]))
    row["all"] = float(np.mean([v.all_right for v in verdicts]))
    row["fidelity"] = float(np.mean([v.fidelity for v in verdicts]))
    row["sharpness"] = float(np.mean([v.sharpness for v in verdicts]))
    row["noise"] = float(np.mean([v.noise for v in verdicts]))
    return row
