"""Cooperative denoising against independent runs: UNet evaluations, wall time, quality of each branch.

    python benchmarks/cooperative_denoising.py [--device cpu|cuda] [--threads 1] [--repeats 3]

C = 4 clusters of N = 8 prompts (each cluster one scene in eight sentences),
T = 50 DDIM steps, k in {0, 10, 25, 40} shared steps:
    (a) the 32 requests one after another,
    (b) the 32 requests batched together (one UNet call of 32 per step),
    cooperative: k steps of one trajectory per cluster, the four prefixes in one
    batched call, then all 32 branches batched.
The analytic evaluation ratio is C (k + N (T - k)) / (C N T); the target is a
wall-time ratio against (b) within 10 % of it. Wall times are the median of
`--repeats` runs. Also prints per-call latency at batch 1..32 (the numbers
`render: profile` can be calibrated with).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from world.imagegen import quality, shapes  # noqa: E402
from world.imagegen.cooperative import CooperativeDenoiser, Group, Job  # noqa: E402
from world.imagegen.pipeline import ShippedModel, load_judge  # noqa: E402
from world.imagegen.shapes import Scene  # noqa: E402

C, N, T, KS = 4, 8, 50, (0, 10, 25, 40)
SCENES = (Scene("circle", "red", "blue", fg_texture="striped", bg_texture="dotted"),
          Scene("square", "yellow", "green", fg_texture="checked"),
          Scene("triangle", "white", "black", bg_texture="wavy"),
          Scene("circle", "green", "white", fg_texture="grainy", bg_texture="striped"))


def cluster_prompts() -> list[tuple[str, Scene]]:
    """C clusters of N captions: one scene each, in N of its sentences (templates x synonyms)."""
    out = []
    for scene in SCENES[:C]:
        wordings = [(t, w) for w in range(3) for t in range(len(shapes.TEMPLATES))][:N]
        out += [(shapes.caption(scene, t, w), scene) for t, w in wordings]
    return out


def timed(fn, repeats: int):
    walls, out = [], None
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        walls.append(time.perf_counter() - start)
    return statistics.median(walls), out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    model = ShippedModel(device=args.device, threads=args.threads)
    judge = load_judge()
    denoiser = CooperativeDenoiser(model)
    reference = quality.DetailReference(model.roundtrip)
    pairs = cluster_prompts()
    prompts, scenes = [c for c, _ in pairs], [s for _, s in pairs]
    cond = model.conditions(prompts)
    n = C * N
    jobs = [Job(i, 1000 + i, T, T) for i in range(n)]

    def sequential():
        return [denoiser.run([Job(0, 1000 + i, T, T)], [Group((0,), 0)], cond[i:i + 1]) for i in range(n)]

    def cooperative(k: int):
        groups = ([Group(tuple(range(c * N, (c + 1) * N)), k) for c in range(C)] if k
                  else [Group((i,), 0) for i in range(n)])
        return denoiser.run(jobs, groups, cond)

    cooperative(10)     # warm-up
    print(f"device {args.device} ({torch.cuda.get_device_name() if args.device.startswith('cuda') else 'CPU'}), "
          f"torch threads {torch.get_num_threads()}, C = {C} clusters of N = {N}, T = {T}, median of {args.repeats}")
    seq_s, seq = timed(sequential, args.repeats)
    seq_evals = sum(o.evaluations["server"] for o in seq)
    bat_s, bat = timed(lambda: cooperative(0), args.repeats)
    seq_images = np.concatenate([o.images for o in seq])
    rows = [("(a) sequential", seq_evals, seq_s, seq_images), ("(b) batched", bat.evaluations["server"], bat_s,
                                                               bat.images)]
    for k in KS[1:]:
        wall, out = timed(lambda k=k: cooperative(k), args.repeats)
        rows.append((f"shared k={k}", out.evaluations["server"], wall, out.images))

    head = (f"{'run':>16} {'UNet evals':>10} {'analytic':>9} {'wall s':>8} {'wall/(b)':>9} {'evals/(b)':>9} "
            f"{'gap':>6} {'fidelity':>9} {'detail':>7} {'quality':>8}")
    print(head)
    print("-" * len(head))
    base_evals = n * T
    for name, evals, wall, images in rows:
        k = int(name.split("=")[1]) if "=" in name else 0
        analytic = C * (k + N * (T - k))
        verdicts = quality.judge(judge, images, scenes, reference)
        eval_ratio, wall_ratio = evals / base_evals, wall / bat_s
        gap = wall_ratio / eval_ratio - 1
        print(f"{name:>16} {evals:>10} {analytic:>9} {wall:>8.3f} {wall_ratio:>9.3f} {eval_ratio:>9.3f} "
              f"{gap:>+6.0%} {np.mean([v.fidelity for v in verdicts]):>9.2f} "
              f"{np.mean([v.detail for v in verdicts]):>7.2f} {np.mean([v.quality for v in verdicts]):>8.2f}")

    print("\nUNet call latency by batch size (profile calibration)")
    print(f"{'batch':>6} {'ms/call':>9} {'ms/image':>9}")
    x0 = model.noise(0)
    t = torch.tensor(500)
    latency = []
    with torch.no_grad():
        for b in (1, 2, 4, 8, 16, 32):
            x, c = x0.repeat(b, 1, 1, 1), cond[:1].repeat(b, 1, 1)
            wall, _ = timed(lambda: [model.predict(x, t, c) for _ in range(10)], args.repeats)
            print(f"{b:>6} {wall * 100:>9.2f} {wall * 100 / b:>9.2f}")
            latency.append((b, wall / 10))
    # least squares of t(b) = t1 * (1 + slope * (b - 1)): the GPU server's profile in a scenario YAML
    b, t = np.array(latency).T
    fit_a, fit_b = np.polyfit(b - 1, t, 1)
    print(f"fit for the YAML: step_latency_s: {fit_b:.4f}, batch_latency_slope: {fit_a / fit_b:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
