"""Measure the shipped model: quality against steps per scheduler, and against the shared fraction k/T.

    python -m world.imagegen.evaluate [--weights DIR] [--schedulers ddim,dpm++,euler_a,ddpm] [--write]

Table 1 (one per scheduler): the held-out captions generated with T = 2 ... 50
steps, judged per attribute (`world.imagegen.quality`: fidelity, detail,
quality = their mean) with KID x 1000 against drawn images of the same
captions; 'drawn' is the world's own images (the ceiling) and 'decoded' the
same images through the autoencoder (the ceiling of a latent model).
Table 2: clusters of 4 prompts generated with k of T = 20 DDIM steps shared,
for similar prompts (one scene: shape, colours and textures, each member in
its own sentence, size and place left open) and dissimilar ones (different
shape or colour and textures); quality of each branch against its own prompt,
and its share of the unshared quality.
`--write` stores the tables as the profile tables (`quality.json` in the
weights folder); `--sheets DIR` draws both trade-offs as PNG image sheets.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from world.imagegen import quality, shapes
from world.imagegen.cooperative import CooperativeDenoiser, Group, Job
from world.imagegen.model import SHIPPED_DIR
from world.imagegen.pipeline import ShippedModel, load_judge
from world.imagegen.schedulers import SCHEDULERS
from world.imagegen.shapes import Scene
from world.imagegen.text import cosine
from world.imagegen.train import held_out_captions

STEPS = (2, 5, 10, 15, 25, 50)
FRACTIONS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)
SHARING_STEPS = 20
COLUMNS = ("shape", "fg", "bg", "fg_texture", "bg_texture", "size", "place", "all", "fidelity", "detail",
           "quality", "kid")
SHARING_COLUMNS = ("fraction", "shared", "similar_fidelity", "similar_detail", "similar_quality", "similar_kept",
                   "dissimilar_fidelity", "dissimilar_detail", "dissimilar_quality", "dissimilar_kept")


def generate(model, denoiser, prompts: list[str], steps: int, shared: int = 0, seed: int = 0,
             cluster_size: int = 0) -> np.ndarray:
    """Images for `prompts`; with `cluster_size` > 0, consecutive runs of that many share `shared` steps."""
    conditions = model.conditions(prompts)
    jobs = [Job(i, seed + i, steps, steps) for i in range(len(prompts))]
    if cluster_size:
        groups = [Group(tuple(range(i, i + cluster_size)), shared) for i in range(0, len(prompts), cluster_size)]
    else:
        groups = [Group((i,), 0) for i in range(len(prompts))]
    return denoiser.run(jobs, groups, conditions).images


def drawn_images(scenes: list[Scene], seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 99])
    return ((shapes.draw(scenes, rng) + 1) * 127.5).round().astype(np.uint8).transpose(0, 2, 3, 1)


def steps_table(model, judge, captions: list[tuple[str, Scene]], steps=STEPS, seed: int = 0, log=print) -> list[dict]:
    """Rows for 'drawn', 'decoded' and each step count: per-attribute accuracy, fidelity, detail, quality, KID."""
    denoiser = CooperativeDenoiser(model)
    prompts, scenes = [c for c, _ in captions], [s for _, s in captions]
    drawn = drawn_images(scenes, seed)
    reference = drawn_images(scenes, seed + 1)        # a second drawing: KID's floor is not 0 at n = 200
    decoded = model.decode(model.encode(drawn))
    ref = quality.DetailReference(model.roundtrip)
    rows = []
    for name, images in (("drawn", drawn), ("decoded", decoded)):
        rows.append({"steps": name, **quality.summarise(quality.judge(judge, images, scenes, ref)),
                     "kid": quality.kid(judge, images, reference)})
    for t in steps:
        started = time.perf_counter()
        images = generate(model, denoiser, prompts, t, seed=seed)
        rows.append({"steps": t, **quality.summarise(quality.judge(judge, images, scenes, ref)),
                     "kid": quality.kid(judge, images, reference)})
        log(f"  {model.scheduler_name} T = {t}: quality {rows[-1]['quality']:.3f} "
            f"({time.perf_counter() - started:.0f} s)")
    return rows


def sharing_clusters(n_clusters: int, size: int, seed: int) -> tuple[list, list]:
    """(similar, dissimilar) clusters: lists of `size` (caption, scene) pairs each.

    Similar: one scene (shape, colours, textures; size and place left open), each member in its own
    sentence template with the same synonyms (MiniLM cosine about 0.9, so the simulator clusters them).
    Dissimilar: a different shape or colour and texture for each member, in one wording.
    """
    rng = np.random.default_rng(seed)
    similar, dissimilar = [], []
    for _ in range(n_clusters):
        base = shapes.random_scenes(1, rng)[0]
        base = Scene(base.shape, base.fg, base.bg, None, None, base.fg_texture, base.bg_texture)
        wording = int(rng.integers(3))
        templates = rng.choice(len(shapes.TEMPLATES), size=size, replace=False)
        similar.append([(shapes.caption(base, int(t), wording), base) for t in templates])
        template = int(rng.integers(len(shapes.TEMPLATES)))
        others: list[Scene] = []
        while len(others) < size:
            s = shapes.random_scenes(1, rng)[0]
            s = Scene(s.shape, s.fg, s.bg, None, None, s.fg_texture, s.bg_texture)
            if all((s.shape, s.fg) != (o.shape, o.fg) and s.fg_texture != o.fg_texture for o in others):
                others.append(s)
        dissimilar.append([(shapes.caption(s, template, wording), s) for s in others])
    return similar, dissimilar


def mean_similarity(model, clusters) -> float:
    sims = []
    for members in clusters:
        e = model.encoder.encode([c for c, _ in members])
        sims.extend(cosine(e[:1], e[1:])[0])
    return float(np.mean(sims))


def sharing_table(model, judge, steps: int = SHARING_STEPS, fractions=FRACTIONS, n_clusters: int = 25,
                  size: int = 4, seed: int = 0) -> tuple[list[dict], dict]:
    denoiser = CooperativeDenoiser(model)
    ref = quality.DetailReference(model.roundtrip)
    similar, dissimilar = sharing_clusters(n_clusters, size, seed)
    info = {"steps": steps, "scheduler": model.scheduler_name, "clusters": n_clusters, "cluster_size": size,
            "similar_cosine": mean_similarity(model, similar), "dissimilar_cosine": mean_similarity(model, dissimilar)}
    rows: list[dict] = []
    for f in fractions:
        k = round(f * steps)
        row: dict = {"fraction": f, "shared": k}
        for name, clusters in (("similar", similar), ("dissimilar", dissimilar)):
            flat = [pair for members in clusters for pair in members]
            images = generate(model, denoiser, [c for c, _ in flat], steps, shared=k, seed=seed, cluster_size=size)
            summary = quality.summarise(quality.judge(judge, images, [s for _, s in flat], ref))
            row.update({f"{name}_{key}": summary[key] for key in ("fidelity", "detail", "quality", "all")})
            row[f"{name}_kept"] = summary["quality"] / (rows[0][f"{name}_quality"] if rows else summary["quality"])
        rows.append(row)
    return rows, info


def format_table(rows: list[dict], columns: tuple[str, ...], width: int = 11) -> str:
    """Right-aligned columns, each at least `width` wide and one space wider than its name."""
    widths = [max(width, len(c) + 1) for c in columns]
    head = "".join(f"{c:>{w}}" for c, w in zip(columns, widths))
    lines = [head, "-" * len(head)]
    for row in rows:
        cells = []
        for c, w in zip(columns, widths):
            v = row[c]
            cells.append(f"{v:>{w}.3f}" if isinstance(v, float) else f"{v!s:>{w}}")
        lines.append("".join(cells))
    return "\n".join(lines)


def write_sheets(model, folder: Path, seed: int = 0) -> list[Path]:
    """Two PNG sheets: steps x prompts, and shared fraction x prompts (similar and dissimilar clusters)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    denoiser = CooperativeDenoiser(model)
    captions = held_out_captions(model.manifest.training.get("seed", 0))[:6]
    prompts = [c for c, _ in captions]
    rows = [("drawn", drawn_images([s for _, s in captions], seed))]
    rows += [(f"{t} steps", generate(model, denoiser, prompts, t, seed=seed)) for t in STEPS]
    paths = [folder / "imagegen_steps.png"]
    _sheet(plt, rows, prompts, paths[0], f"{model.scheduler_name.upper()} steps x held-out prompts")

    similar, dissimilar = sharing_clusters(1, 4, seed + 3)
    flat = similar[0] + dissimilar[0]
    prompts = [c for c, _ in flat]
    rows = []
    for f in (0.0, 0.2, 0.3, 0.5, 0.8):
        k = round(f * SHARING_STEPS)
        rows.append((f"k/T = {f:.1f}", generate(model, denoiser, prompts, SHARING_STEPS, shared=k, seed=seed,
                                                cluster_size=4)))
    paths.append(folder / "imagegen_sharing.png")
    _sheet(plt, rows, prompts, paths[1], f"shared prefix of T = {SHARING_STEPS}: a similar cluster (left 4), "
                                         "a dissimilar one (right 4)")
    return paths


def _sheet(plt, rows: list[tuple[str, np.ndarray]], prompts: list[str], path: Path, title: str) -> None:
    n_rows, n_cols = len(rows), len(prompts)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.6 * n_cols + 0.6, 1.6 * n_rows + 0.9), squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.imshow(images[c], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
            if r == 0:
                ax.set_title("\n".join(_wrap(prompts[c], 22)), fontsize=6)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return [*lines, line]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m world.imagegen.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, default=SHIPPED_DIR)
    p.add_argument("--captions", type=int, default=200, help="held-out captions to judge (at most 200)")
    p.add_argument("--schedulers", default=",".join(SCHEDULERS), help="comma-separated, from: " + ", ".join(SCHEDULERS))
    p.add_argument("--clusters", type=int, default=25, help="clusters per kind in the sharing table")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--write", action="store_true", help="store the tables as the profile quality tables")
    p.add_argument("--sheets", type=Path, default=None, help="folder for the PNG image sheets")
    args = p.parse_args(argv)
    names = [n.strip() for n in args.schedulers.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCHEDULERS]
    if unknown or not names:
        p.error(f"--schedulers: unknown {', '.join(unknown) or '(none given)'}; known: {', '.join(SCHEDULERS)}")
    if args.write and "ddim" not in names:
        p.error("--write needs ddim among --schedulers (the sharing table and the default profile use it)")
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    judge = load_judge(args.weights)
    models = {n: ShippedModel(args.weights, threads=args.threads, scheduler=n) for n in names}
    ddim = models.get("ddim") or next(iter(models.values()))
    captions = held_out_captions(ddim.manifest.training.get("seed", 0))[:args.captions]
    tables = {}
    for name, model in models.items():
        tables[name] = steps_table(model, judge, captions)
        print(f"\nQuality against {name} steps ({len(captions)} held-out captions; 'drawn' = the world's own "
              f"images, 'decoded' = them through the autoencoder; kid x 1000)")
        print(format_table(tables[name], ("steps", *COLUMNS)))
        by_t = {row["steps"]: row["quality"] for row in tables[name]}
        print("quality / quality at 50: " + ", ".join(f"{t}: {by_t[t] / by_t[50]:.2f}" for t in STEPS if 50 in by_t))
    share_rows, info = sharing_table(ddim, judge, n_clusters=args.clusters)
    print(f"\nQuality of each branch against the shared fraction k/T ({info['scheduler']}, T = {info['steps']}, "
          f"{info['clusters']} clusters of {info['cluster_size']} per kind; mean MiniLM cosine to the first prompt: "
          f"similar {info['similar_cosine']:.2f}, dissimilar {info['dissimilar_cosine']:.2f})")
    print(format_table(share_rows, SHARING_COLUMNS, width=13))
    if args.sheets:
        for path in write_sheets(ddim, args.sheets):
            print(f"wrote {path}")
    print(f"\n{time.perf_counter() - started:.0f} s")
    if args.write:
        out = {"weights": ddim.manifest.sha256, "measures": "fidelity, detail, quality = (fidelity + detail) / 2; "
               "kid x 1000 on the judge's features (world/imagegen/quality.py)",
               "schedulers": {n: {"steps": [r for r in rows if isinstance(r["steps"], int)],
                                  "ceilings": [r for r in rows if not isinstance(r["steps"], int)]}
                              for n, rows in tables.items()},
               "sharing": share_rows, "sharing_setup": info}
        path = args.weights / "quality.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(out, indent=1) + "\n")
        tmp.replace(path)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
