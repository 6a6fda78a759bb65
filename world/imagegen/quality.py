"""How good a generated image is: fidelity to its prompt, detail, and distance to drawn images.

The measures are fixed here, before any curve is looked at:

    fidelity   share of the prompt's attributes the trained judge (a CNN) reads
               right off the image: shape, foreground and background colour,
               foreground and background texture always; size and place when
               the prompt names them.
    detail     high-frequency energy of the image relative to that of drawn
               images of the same scene as the model's autoencoder returns
               them (the most a latent model can draw), capped at 1:
                   hf(x) = mean over pixels and channels of (x - box3(x))^2,
                   detail = min(1, hf(image) / mean hf(references)),
               so stripes smeared into a flat tint and soft outlines score low.
               Without an autoencoder the references are the drawn images.
    quality    (fidelity + detail) / 2: the one number the persona, the
               profile tables and the step curve use.
    KID        kernel inception distance on the judge's pooled features
               (192-d, standardised with the drawn set's mean and spread),
               generated against drawn images of the same captions: unbiased
               MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3,
               reported x 1000 (lower is closer). The two sets show the same
               captions pair by pair, and the cross term keeps those pairs, so
               the figure sits below 0: compare a row with the evaluator's
               'drawn' row (two drawings of the captions), not with 0.

The judge also says what it sees, detail included ("a red striped circle on
a dotted blue background; the stripes are smeared into a blur"): that
sentence is what the persona is told.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from world.imagegen import shapes
from world.imagegen.model import JUDGED
from world.imagegen.shapes import Scene

ATTRIBUTES = tuple(JUDGED)
REFERENCES = 8              # drawn images per scene for the detail reference


@dataclass(frozen=True)
class Verdict:
    """What the judge found in one image against its prompt's scene."""

    right: dict[str, bool]          # attribute -> correct (only the prompt's attributes)
    detail: float                   # 0-1, see the module docstring
    seen: str = ""                  # what the judge sees, in words, detail included

    @property
    def fidelity(self) -> float:
        """Share of the prompt's attributes that are right, 0-1."""
        return sum(self.right.values()) / len(self.right)

    @property
    def quality(self) -> float:
        """(fidelity + detail) / 2, 0-1."""
        return (self.fidelity + self.detail) / 2

    @property
    def all_right(self) -> bool:
        return all(self.right.values())


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """(n, H, W, 3) uint8 -> (n, 3, H, W) float in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def high_frequency(images: np.ndarray) -> np.ndarray:
    """hf per image (n, H, W, 3 uint8): mean squared difference from the 3x3 box blur, in [0, 1] units."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).double() / 255.0
    blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    return ((x - blurred) ** 2).mean(dim=(1, 2, 3)).numpy()


class DetailReference:
    """hf of drawn images per scene, optionally through a model's autoencoder round trip; cached per scene.

    Args:
        roundtrip: images (n, H, W, 3 uint8) -> the same through the autoencoder; None: the drawn images.
    """

    def __init__(self, roundtrip=None) -> None:
        self.roundtrip = roundtrip
        self._cache: dict[Scene, float] = {}

    def __call__(self, scenes: Sequence[Scene]) -> np.ndarray:
        todo = [s for s in dict.fromkeys(scenes) if s not in self._cache]
        for scene in todo:
            # seeded by the scene, so a scene's reference never depends on what else is judged with it
            rng = np.random.default_rng([int(v) for v in scene.labels] + [len(scene.size or ""), len(scene.place or "")])
            drawn = ((shapes.draw([scene] * REFERENCES, rng) + 1) * 127.5).round().astype(np.uint8)
            drawn = drawn.transpose(0, 2, 3, 1)
            if self.roundtrip is not None:
                drawn = self.roundtrip(drawn)
            self._cache[scene] = float(high_frequency(drawn).mean())
        return np.array([self._cache[s] for s in scenes])


def reference_detail(scenes: Sequence[Scene]) -> np.ndarray:
    """Mean hf of REFERENCES drawn images per scene (what a perfect drawing of that caption has)."""
    return DetailReference()(scenes)


def detail(images: np.ndarray, scenes: Sequence[Scene], reference: DetailReference | None = None) -> np.ndarray:
    """min(1, hf(image) / hf(references of its scene)) per image."""
    ref = (reference or DetailReference())(scenes)
    return np.minimum(1.0, high_frequency(images) / np.maximum(ref, 1e-9))


def _texture_word(texture: str, detail_value: float) -> str:
    """How a texture looks at a given detail, for the persona."""
    if texture == "plain":
        return ""
    pattern = {"striped": "stripes", "checked": "checks", "dotted": "dots", "wavy": "waves",
               "grainy": "grain"}[texture]
    if detail_value >= 0.85:
        return f"crisp {pattern}"
    if detail_value >= 0.6:
        return f"slightly soft {pattern}"
    if detail_value >= 0.35:
        return f"the {pattern} are smeared into a blur"
    return f"the {pattern} are washed out into a flat tint"


def describe(scene: Scene, detail_value: float) -> str:
    """What the judge sees, with its detail: 'a red striped circle on a dotted blue background; crisp dots'."""
    words = [w for w in {_texture_word(t, detail_value) for t in (scene.fg_texture, scene.bg_texture)} if w]
    if not words:
        words = ["sharp edges" if detail_value >= 0.85 else "soft edges" if detail_value >= 0.5
                 else "blurred, smudged edges"]
    return f"{scene.describe()}; {', '.join(sorted(words))}"


@torch.no_grad()
def judge(judge_net, images: np.ndarray, scenes: Sequence[Scene | None],
          reference: DetailReference | None = None) -> list[Verdict | None]:
    """Verdicts for images (n, H, W, 3 uint8) against their scenes (None: the prompt names no scene).

    `reference`: what detail is measured against (see `DetailReference`; default: drawn images).
    """
    if len(images) == 0:
        return []
    logits = judge_net(to_tensor(images))
    guess = {name: lg.argmax(1).tolist() for name, lg in logits.items()}
    known = [i for i, s in enumerate(scenes) if s is not None]
    details = np.zeros(len(scenes))
    if known:
        details[known] = detail(images[known], [scenes[i] for i in known], reference)
    out: list[Verdict | None] = []
    for i, scene in enumerate(scenes):
        if scene is None:
            out.append(None)
            continue
        want = dict(zip(("shape", "fg", "bg", "fg_texture", "bg_texture"), scene.labels))
        right = {name: guess[name][i] == want[name] for name in want}
        if scene.size:
            right["size"] = JUDGED["size"][guess["size"][i]] == scene.size
        if scene.place:
            right["place"] = JUDGED["place"][guess["place"][i]] == scene.place
        read = Scene(*(JUDGED[name][guess[name][i]] for name in ("shape", "fg", "bg")),
                     fg_texture=JUDGED["fg_texture"][guess["fg_texture"][i]],
                     bg_texture=JUDGED["bg_texture"][guess["bg_texture"][i]])
        out.append(Verdict(right, float(details[i]), describe(read, float(details[i]))))
    return out


@torch.no_grad()
def kid(judge_net, generated: np.ndarray, drawn: np.ndarray) -> float:
    """KID x 1000 between two sets of images (n, H, W, 3 uint8) on the judge's pooled features.

    The features are standardised per dimension with the drawn set's mean and spread first: raw
    judge features are large, and the cubic kernel of large dot products would be all variance.
    """
    y = judge_net.features(to_tensor(drawn)).double()
    x = judge_net.features(to_tensor(generated)).double()
    mean, std = y.mean(0), y.std(0) + 1e-6
    x, y = (x - mean) / std, (y - mean) / std
    d = x.shape[1]

    def kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a @ b.T / d + 1) ** 3

    m, n = len(x), len(y)
    kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
    mmd = ((kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1)) + (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
           - 2 * kxy.mean())
    return float(mmd) * 1000


def summarise(verdicts: Sequence[Verdict]) -> dict[str, float]:
    """Accuracy per attribute (over the verdicts that judge it), all-right share, fidelity, detail, quality."""
    row: dict[str, float] = {}
    for a in ATTRIBUTES:
        judged = [v.right[a] for v in verdicts if a in v.right]
        row[a] = float(np.mean(judged)) if judged else float("nan")
    row["all"] = float(np.mean([v.all_right for v in verdicts]))
    row["fidelity"] = float(np.mean([v.fidelity for v in verdicts]))
    row["detail"] = float(np.mean([v.detail for v in verdicts]))
    row["quality"] = float(np.mean([v.quality for v in verdicts]))
    return row
