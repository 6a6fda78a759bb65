"""Procedural captioned images: the world the shipped text-to-image model learns.

An image is one shape (circle, square, triangle) of one colour on a plain
background of another colour, large or small, in the centre or towards one
side. Its caption names the shape and the two colours in one of several
wordings, and names the size and the place only sometimes.

Colours and shape are what the fidelity judge checks. Size and place are
decided late in denoising, so prompts that differ only there (or only in
wording) are the ones worth sharing a prefix of denoising steps.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

SIZE = 32                                   # pixels per side

SHAPES = ("circle", "square", "triangle")
COLOURS = {                                 # name -> RGB in [0, 1]
    "red": (0.85, 0.10, 0.10),
    "green": (0.10, 0.70, 0.15),
    "blue": (0.10, 0.25, 0.90),
    "yellow": (0.95, 0.85, 0.10),
    "white": (0.95, 0.95, 0.95),
    "black": (0.05, 0.05, 0.05),
}
COLOUR_NAMES = tuple(COLOURS)
SIZES = {"small": 6.0, "large": 11.0}       # radius, px
PLACES = {"centre": (0, 0), "left": (-7, 0), "right": (7, 0), "top": (0, -7), "bottom": (0, 7)}

SHAPE_WORDS = {
    "circle": ("circle", "disc", "round dot"),
    "square": ("square", "box", "block"),
    "triangle": ("triangle", "wedge", "pyramid"),
}
SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("large", "big", "huge")}
PLACE_WORDS = {
    "centre": ("in the centre", "in the middle"),
    "left": ("on the left", "at the left side"),
    "right": ("on the right", "at the right side"),
    "top": ("at the top", "near the top"),
    "bottom": ("at the bottom", "near the bottom"),
}
TEMPLATES = (
    "a {size}{fg} {shape}{place} on a {bg} background",
    "{bg} backdrop with a {size}{fg} {shape}{place}",
    "a {size}{fg} {shape} against {bg}{place}",
    "picture of a {size}{fg} {shape}{place}, {bg} background",
    "{size}{fg} {shape} on plain {bg}{place}",
)


@dataclass(frozen=True)
class Scene:
    """What one image shows; `size` and `place` are None when the caption leaves them open."""

    shape: str
    fg: str
    bg: str
    size: str | None = None
    place: str | None = None

    @property
    def labels(self) -> tuple[int, int, int]:
        """(shape, foreground, background) class indices, as the judge predicts them."""
        return SHAPES.index(self.shape), COLOUR_NAMES.index(self.fg), COLOUR_NAMES.index(self.bg)


def caption(scene: Scene, template: int, wording: int) -> str:
    """One wording of the scene's caption; `wording` picks among synonyms."""
    size = f"{SIZE_WORDS[scene.size][wording % 3]} " if scene.size else ""
    place = f" {PLACE_WORDS[scene.place][wording % 2]}" if scene.place else ""
    return TEMPLATES[template].format(size=size, fg=scene.fg, shape=SHAPE_WORDS[scene.shape][wording % 3],
                                      place=place, bg=scene.bg)


def all_captions() -> list[tuple[str, Scene]]:
    """Every caption the generator can write, with its scene (sorted, deduplicated)."""
    out: dict[str, Scene] = {}
    sizes, places = (None, *SIZES), (None, *PLACES)
    for shape, fg, bg, size, place in itertools.product(SHAPES, COLOUR_NAMES, COLOUR_NAMES, sizes, places):
        if fg == bg:
            continue
        scene = Scene(shape, fg, bg, size, place)
        for template, wording in itertools.product(range(len(TEMPLATES)), range(3)):
            out.setdefault(caption(scene, template, wording), scene)
    return sorted(out.items())


def draw(scenes: list[Scene], rng: np.random.Generator) -> np.ndarray:
    """Render scenes as float32 images in [-1, 1], shape (n, 3, SIZE, SIZE).

    What a caption leaves open is drawn at random; every shape also gets a
    little jitter in size and position, so no two images are identical.
    """
    n = len(scenes)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) + 0.5
    images = np.empty((n, 3, SIZE, SIZE), dtype=np.float32)
    for i, s in enumerate(scenes):
        size = s.size or rng.choice(list(SIZES))
        place = s.place or rng.choice(list(PLACES))
        r = SIZES[size] * rng.uniform(0.9, 1.1)
        reach = min(1.0, (SIZE / 2 - 2.5 - r) / 7.0)     # large shapes move less, to stay inside
        dx, dy = (reach * c for c in PLACES[place])
        cx = SIZE / 2 + dx + rng.uniform(-1.5, 1.5)
        cy = SIZE / 2 + dy + rng.uniform(-1.5, 1.5)
        u, v = xx - cx, yy - cy
        if s.shape == "circle":
            mask = u * u + v * v <= r * r
        elif s.shape == "square":
            half = r * 0.85
            mask = (np.abs(u) <= half) & (np.abs(v) <= half)
        else:   # upward triangle with its centroid at (cx, cy)
            top, base = -r, r * 0.7
            inside_y = (v >= top) & (v <= base)
            half_width = (v - top) / (base - top) * r * 1.05
            mask = inside_y & (np.abs(u) <= half_width)
        fg = np.asarray(COLOURS[s.fg], dtype=np.float32)[:, None, None]
        bg = np.asarray(COLOURS[s.bg], dtype=np.float32)[:, None, None]
        images[i] = np.where(mask[None], fg, bg)
    return images * 2.0 - 1.0


def random_scenes(n: int, rng: np.random.Generator) -> list[Scene]:
    """Scenes with every attribute drawn uniformly (size and place always set)."""
    out = []
    for _ in range(n):
        fg, bg = rng.choice(len(COLOUR_NAMES), size=2, replace=False)
        out.append(Scene(SHAPES[rng.integers(len(SHAPES))], COLOUR_NAMES[fg], COLOUR_NAMES[bg],
                         list(SIZES)[rng.integers(2)], list(PLACES)[rng.integers(len(PLACES))]))
    return out


def parse(prompt: str) -> Scene | None:
    """The scene a free-form prompt asks for, when it names one shape and two colours; else None.

    The colour nearest before the shape word is the shape's; the other is the background's.
    """
    words = prompt.lower().replace(",", " ").replace(".", " ").split()
    shape_at = [(i, shape) for i, w in enumerate(words) for shape, names in SHAPE_WORDS.items()
                if w in {n.split()[-1] for n in names}]
    colour_at = [(i, w) for i, w in enumerate(words) if w in COLOURS]
    if len({s for _, s in shape_at}) != 1 or len({c for _, c in colour_at}) != 2:
        return None
    where, shape = shape_at[0]
    before = [(i, c) for i, c in colour_at if i < where]
    if not before:
        return None
    fg = before[-1][1]
    bg = next(c for _, c in colour_at if c != fg)
    size = next((s for s, names in SIZE_WORDS.items() for w in words if w in names), None)
    return Scene(shape, fg, bg, size)
