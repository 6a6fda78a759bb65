"""Procedural captioned images: the world the shipped text-to-image model learns.

An image is one shape (circle, square, triangle) of one colour on a
background of another colour, large or small, in the centre or towards one
side. Shape and background each carry a texture: plain, striped, checked,
dotted, wavy or grainy. A caption names the shape, the two colours and the
two textures ("a red striped circle on a dotted blue background"), in one of
several wordings, and names the size and the place only sometimes.

What a caption fixes is decided early in denoising (colours, layout). What
it leaves open is drawn at random for every sample: a texture's angle,
spacing and phase, the grain's pattern, a little jitter of size and place.
That open detail bends the denoising path, so a sampler with few large steps
returns the average over it (stripes smeared into a flat tint), and it is
what the later steps of a long schedule spend themselves on, as in Stable
Diffusion. Prompts that differ only in wording or in such detail are the ones
worth sharing a prefix of denoising steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SIZE = 48                                   # pixels per side

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
TEXTURES = ("plain", "striped", "checked", "dotted", "wavy", "grainy")
SIZES = {"small": 9.0, "large": 16.0}       # radius, px
PLACES = {"centre": (0, 0), "left": (-10, 0), "right": (10, 0), "top": (0, -10), "bottom": (0, 10)}

SHAPE_WORDS = {
    "circle": ("circle", "disc", "round dot"),
    "square": ("square", "box", "block"),
    "triangle": ("triangle", "wedge", "pyramid"),
}
TEXTURE_WORDS = {                           # "" for plain in most wordings: "a red circle" is a plain one
    "plain": ("", "plain ", ""),
    "striped": ("striped ", "stripy ", "striped "),
    "checked": ("checked ", "checkered ", "chequered "),
    "dotted": ("dotted ", "polka-dot ", "spotted "),
    "wavy": ("wavy ", "wave-patterned ", "rippled "),
    "grainy": ("grainy ", "speckled ", "mottled "),
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
    "a {size}{fg} {fgt}{shape}{place} on a {bgt}{bg} background",
    "{bgt}{bg} backdrop with a {size}{fg} {fgt}{shape}{place}",
    "a {size}{fg} {fgt}{shape} against {bgt}{bg}{place}",
    "picture of a {size}{fg} {fgt}{shape}{place}, {bgt}{bg} background",
    "{size}{fg} {fgt}{shape} on {bgt}{bg}{place}",
)


@dataclass(frozen=True)
class Scene:
    """What one image shows; `size` and `place` are None when the caption leaves them open."""

    shape: str
    fg: str
    bg: str
    size: str | None = None
    place: str | None = None
    fg_texture: str = "plain"
    bg_texture: str = "plain"

    @property
    def labels(self) -> tuple[int, int, int, int, int]:
        """(shape, foreground, background, foreground texture, background texture) class indices, as the
        judge predicts them."""
        return (SHAPES.index(self.shape), COLOUR_NAMES.index(self.fg), COLOUR_NAMES.index(self.bg),
                TEXTURES.index(self.fg_texture), TEXTURES.index(self.bg_texture))

    def describe(self) -> str:
        """The scene in plain words, as the judge reports what it sees."""
        fgt = "" if self.fg_texture == "plain" else self.fg_texture + " "
        bgt = "" if self.bg_texture == "plain" else self.bg_texture + " "
        return f"a {self.fg} {fgt}{self.shape} on a {bgt}{self.bg} background"


def caption(scene: Scene, template: int, wording: int) -> str:
    """One wording of the scene's caption; `wording` picks among synonyms."""
    size = f"{SIZE_WORDS[scene.size][wording % 3]} " if scene.size else ""
    place = f" {PLACE_WORDS[scene.place][wording % 2]}" if scene.place else ""
    return " ".join(TEMPLATES[template].format(
        size=size, fgt=TEXTURE_WORDS[scene.fg_texture][wording % 3], fg=scene.fg,
        shape=SHAPE_WORDS[scene.shape][wording % 3], place=place,
        bgt=TEXTURE_WORDS[scene.bg_texture][wording % 3], bg=scene.bg).split())


def random_captions(n: int, rng: np.random.Generator) -> list[tuple[str, Scene]]:
    """`n` captions drawn uniformly over scenes (size and place named half the time each) and wordings."""
    out = []
    for _ in range(n):
        scene = random_scenes(1, rng)[0]
        size = scene.size if rng.random() < 0.5 else None
        place = scene.place if rng.random() < 0.5 else None
        scene = Scene(scene.shape, scene.fg, scene.bg, size, place, scene.fg_texture, scene.bg_texture)
        out.append((caption(scene, int(rng.integers(len(TEMPLATES))), int(rng.integers(3))), scene))
    return out


def _shade(rgb: np.ndarray) -> np.ndarray:
    """The second tone of a textured colour: darker for a bright colour, lighter for black; same hue."""
    return rgb * 0.45 if rgb.max() > 0.3 else rgb + 0.4


def _texture(kind: str, xx: np.ndarray, yy: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Where the second tone goes (boolean map) for one texture, with a random angle, spacing and phase."""
    if kind == "plain":
        return np.zeros_like(xx, dtype=bool)
    angle = rng.uniform(0, np.pi)
    u = xx * np.cos(angle) + yy * np.sin(angle)
    v = -xx * np.sin(angle) + yy * np.cos(angle)
    if kind == "striped":
        period = rng.uniform(5.0, 8.0)
        return ((u / period + rng.uniform()) % 1.0) < 0.5
    if kind == "checked":
        cell = rng.uniform(3.5, 5.5)
        return ((np.floor(u / cell + rng.uniform()) + np.floor(v / cell + rng.uniform())) % 2) == 1
    if kind == "dotted":
        pitch = rng.uniform(5.5, 8.0)
        du = (u / pitch + rng.uniform()) % 1.0 - 0.5
        dv = (v / pitch + rng.uniform()) % 1.0 - 0.5
        return du * du + dv * dv < rng.uniform(0.07, 0.1)
    if kind == "wavy":
        period, wave = rng.uniform(5.0, 8.0), rng.uniform(9.0, 14.0)
        bend = rng.uniform(1.5, 2.5) * np.sin(2 * np.pi * v / wave + rng.uniform(0, 2 * np.pi))
        return (((u + bend) / period + rng.uniform()) % 1.0) < 0.5
    if kind == "grainy":   # blotches: random 3-pixel cells, shifted by a random phase, some 40 % covered
        cells = rng.random((SIZE // 3 + 2, SIZE // 3 + 2))
        dy, dx = rng.integers(3, size=2)
        return np.kron(cells, np.ones((3, 3)))[dy:dy + SIZE, dx:dx + SIZE] < 0.4
    raise ValueError(f"unknown texture {kind!r}; known: {', '.join(TEXTURES)}")


def draw(scenes: list[Scene], rng: np.random.Generator) -> np.ndarray:
    """Render scenes as float32 images in [-1, 1], shape (n, 3, SIZE, SIZE).

    What a caption leaves open is drawn at random: size and place when not
    named, every texture's angle, spacing and phase, and a little jitter in
    size and position, so no two images are identical.
    """
    n = len(scenes)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) + 0.5
    images = np.empty((n, 3, SIZE, SIZE), dtype=np.float32)
    for i, s in enumerate(scenes):
        size = s.size or list(SIZES)[rng.integers(len(SIZES))]
        place = s.place or list(PLACES)[rng.integers(len(PLACES))]
        r = SIZES[size] * rng.uniform(0.9, 1.1)
        reach = min(1.0, (SIZE / 2 - 3.0 - r) / 10.0)     # large shapes move less, to stay inside
        dx, dy = (reach * c for c in PLACES[place])
        cx = SIZE / 2 + dx + rng.uniform(-2.0, 2.0)
        cy = SIZE / 2 + dy + rng.uniform(-2.0, 2.0)
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
        fg = np.asarray(COLOURS[s.fg], dtype=np.float32)
        bg = np.asarray(COLOURS[s.bg], dtype=np.float32)
        fg_map = np.where(_texture(s.fg_texture, xx, yy, rng)[None], _shade(fg)[:, None, None], fg[:, None, None])
        bg_map = np.where(_texture(s.bg_texture, xx, yy, rng)[None], _shade(bg)[:, None, None], bg[:, None, None])
        images[i] = np.where(mask[None], fg_map, bg_map)
    return images * 2.0 - 1.0


def random_scenes(n: int, rng: np.random.Generator) -> list[Scene]:
    """Scenes with every attribute drawn uniformly (size and place always set)."""
    out = []
    for _ in range(n):
        fg, bg = rng.choice(len(COLOUR_NAMES), size=2, replace=False)
        ft, bt = rng.integers(len(TEXTURES), size=2)
        out.append(Scene(SHAPES[rng.integers(len(SHAPES))], COLOUR_NAMES[fg], COLOUR_NAMES[bg],
                         list(SIZES)[rng.integers(2)], list(PLACES)[rng.integers(len(PLACES))],
                         TEXTURES[ft], TEXTURES[bt]))
    return out


TEXTURE_BY_WORD = {name.strip(): kind for kind, names in TEXTURE_WORDS.items() for name in names if name.strip()}


def _texture_at(words: list[str], order: tuple[int, ...]) -> str:
    """The texture named by the first of the words at `order` that names one ("plain" when none does)."""
    for i in order:
        if 0 <= i < len(words) and words[i] in TEXTURE_BY_WORD:
            return TEXTURE_BY_WORD[words[i]]
    return "plain"


def parse(prompt: str) -> Scene | None:
    """The scene a free-form prompt asks for, when it names one shape and two colours; else None.

    The colour nearest before the shape word is the shape's; the other is the background's. A texture
    word next to a colour ("red striped circle", "dotted blue background") is that colour's texture.
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
    fg_at, fg = before[-1]
    bg_at, bg = next((i, c) for i, c in colour_at if c != fg)
    size = next((s for s, names in SIZE_WORDS.items() for w in words if w in names), None)
    fg_texture = _texture_at(words, tuple(i for i in (fg_at + 1, fg_at - 1) if i != bg_at and i < where))
    bg_texture = _texture_at(words, tuple(i for i in (bg_at - 1, bg_at + 1) if i != fg_at and i != where))
    return Scene(shape, fg, bg, size, None, fg_texture, bg_texture)
