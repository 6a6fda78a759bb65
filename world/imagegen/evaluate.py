"""Measure the shipped model: quality against steps, and against the shared fraction k/T.

    python -m world.imagegen.evaluate [--weights DIR] [--write]

Table 1: the held-out captions generated with T = 2, 5, 10, 20, 50 DDIM steps,
judged per attribute, with sharpness and noise beside (drawn images as the
ceiling). Table 2: clusters of 4 prompts generated with k of T steps shared,
for similar prompts (same shape and colours, each with its own size and place,
in one wording) and dissimilar ones (different shapes or colours); fidelity of
each branch to its own prompt. `--write` stores both as the profile quality
tables (`quality.json` in the weights folder).
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
from world.imagegen.shapes import Scene
from world.imagegen.text import cosine
from world.imagegen.train import held_out_captions

STEPS = (2, 5, 10, 20, 50)
FRACTIONS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)
COLUMNS = ("shape", "fg", "bg", "colours_shape", "size", "place", "all", "fidelity", "sharpness", "noise")


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


def steps_table(model, judge, captions: list[tuple[str, Scene]], steps=STEPS, seed: int = 0) -> list[dict]:
    denoiser = CooperativeDenoiser(model)
    prompts, scenes = [c for c, _ in captions], [s for _, s in captions]
    rng = np.random.default_rng(seed)
    drawn = ((shapes.draw(scenes, rng) + 1) * 127.5).round().astype(np.uint8).transpose(0, 2, 3, 1)
    rows = [{"steps": "drawn", **quality.summarise(quality.judge(judge, drawn, scenes))}]
    for t in steps:
        images = generate(model, denoiser, prompts, t, seed=seed)
        rows.append({"steps": t, **quality.summarise(quality.judge(judge, images, scenes))})
    return rows


def sharing_clusters(n_clusters: int, size: int, seed: int) -> tuple[list, list]:
    """(similar, dissimilar) clusters: lists of `size` (caption, scene) pairs each."""
    rng = np.random.default_rng(seed)
    layouts = [(s, p) for s in shapes.SIZES for p in shapes.PLACES]
    similar, dissimilar = [], []
    for _ in range(n_clusters):
        template, wording = int(rng.integers(len(shapes.TEMPLATES))), int(rng.integers(3))
        base = shapes.random_scenes(1, rng)[0]
        picks = rng.choice(len(layouts), size=size, replace=False)
        members = [Scene(base.shape, base.fg, base.bg, *layouts[i]) for i in picks]
        similar.append([(shapes.caption(s, template, wording), s) for s in members])
        others = []
        while len(others) < size:
            s = shapes.random_scenes(1, rng)[0]
            if (s.shape, s.fg) not in {(o.shape, o.fg) for o in others}:
                others.append(s)
        dissimilar.append([(shapes.caption(s, template, wording), s) for s in others])
    return similar, dissimilar


def mean_similarity(model, clusters) -> float:
    sims = []
    for members in clusters:
        e = model.encoder.encode([c for c, _ in members])
        sims.extend(cosine(e[:1], e[1:])[0])
    return float(np.mean(sims))


def sharing_table(model, judge, steps: int = 20, fractions=FRACTIONS, n_clusters: int = 25, size: int = 4,
                  seed: int = 0) -> tuple[list[dict], dict]:
    denoiser = CooperativeDenoiser(model)
    similar, dissimilar = sharing_clusters(n_clusters, size, seed)
    info = {"steps": steps, "clusters": n_clusters, "cluster_size": size,
            "similar_cosine": mean_similarity(model, similar), "dissimilar_cosine": mean_similarity(model, dissimilar)}
    rows = []
    for f in fractions:
        k = round(f * steps)
        row: dict = {"fraction": f, "shared": k}
        for name, clusters in (("similar", similar), ("dissimilar", dissimilar)):
            flat = [pair for members in clusters for pair in members]
            images = generate(model, denoiser, [c for c, _ in flat], steps, shared=k, seed=seed, cluster_size=size)
            summary = quality.summarise(quality.judge(judge, images, [s for _, s in flat]))
            row.update({f"{name}_{key}": summary[key] for key in ("fidelity", "all", "colours_shape", "size",
                                                                   "place")})
        rows.append(row)
    return rows, info


def format_table(rows: list[dict], columns: tuple[str, ...]) -> str:
    head = "".join(f"{c:>14}" for c in columns)
    lines = [head, "-" * len(head)]
    for row in rows:
        cells = []
        for c in columns:
            v = row[c]
            cells.append(f"{v:>14.3f}" if isinstance(v, float) else f"{v!s:>14}")
        lines.append("".join(cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m world.imagegen.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, default=SHIPPED_DIR)
    p.add_argument("--captions", type=int, default=200, help="held-out captions to judge (at most 200)")
    p.add_argument("--clusters", type=int, default=25, help="clusters per kind in the sharing table")
    p.add_argument("--sharing-steps", type=int, default=20, help="T of the sharing table")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--write", action="store_true", help="store the tables as the profile quality tables")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    model = ShippedModel(args.weights, threads=args.threads)
    judge = load_judge(args.weights)
    captions = held_out_captions(model.manifest.training.get("seed", 0))[:args.captions]
    steps_rows = steps_table(model, judge, captions)
    print(f"Quality against DDIM steps ({len(captions)} held-out captions; 'drawn' = the generator's own images)")
    print(format_table(steps_rows, ("steps", *COLUMNS)))
    share_rows, info = sharing_table(model, judge, steps=args.sharing_steps, n_clusters=args.clusters)
    print(f"\nFidelity of each branch against the shared fraction k/T (T = {info['steps']}, {info['clusters']} "
          f"clusters of {info['cluster_size']} per kind; mean cosine to the first prompt: similar "
          f"{info['similar_cosine']:.2f}, dissimilar {info['dissimilar_cosine']:.2f})")
    print(format_table(share_rows, ("fraction", "shared", "similar_fidelity", "similar_all", "similar_size",
                                    "similar_place", "dissimilar_fidelity", "dissimilar_all",
                                    "dissimilar_colours_shape")))
    print(f"\n{time.perf_counter() - started:.0f} s")
    if args.write:
        out = {"weights": model.manifest.sha256, "steps": steps_rows[1:], "drawn": steps_rows[0],
               "sharing": share_rows, "sharing_setup": info}
        path = args.weights / "quality.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(out, indent=1) + "\n")
        tmp.replace(path)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
