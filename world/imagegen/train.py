"""Train the shipped text-to-image model and its judge: `python -m world.imagegen.train`.

Reproducible from `--seed` (same seed, same threads, same files). The
default budget fits in well under an hour on 2 CPU cores; `--tiny` trains a
toy architecture for a few steps (tests use it).

Conditioning: MiniLM token embeddings for cross-attention and the pooled
sentence embedding for the class embedding, both standardised per dimension
(statistics from the training captions, shipped with the weights).

Recipe: v-prediction on a cosine ('squaredcos_cap_v2') schedule with
min-SNR-5 loss weighting; bfloat16 autocast on the CPU; AdamW with warm-up
and cosine decay; an exponential moving average of the weights is what
ships. One prompt in ten is trained unconditioned (a zero embedding) so
classifier-free guidance is available, though the simulator runs without it.
200 captions are held out of training for the quality measurement.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from world.imagegen import shapes
from world.imagegen.model import (DENOISER_FILE, JUDGE_FILE, SHIPPED_DIR, DenoiserSpec, Judge, Manifest,
                                  build_unet, save_tensors, sha256, train_scheduler)
from world.imagegen.pipeline import unet_call
from world.imagegen.text import PromptEncoder, token_embeddings

HELD_OUT = 200
CACHE = Path(".cache/aigcsim")


def caption_embeddings(encoder: PromptEncoder, captions: list[str]) -> np.ndarray:
    """MiniLM embeddings of the whole caption corpus, cached on disk by the corpus's content."""
    key = sha256_text("\n".join(captions))[:16]
    path = CACHE / f"captions-minilm-{key}.npy"
    if path.is_file():
        return np.load(path)
    vectors = encoder.encode(captions)
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, vectors)
    tmp.replace(path)
    return vectors


def caption_tokens(encoder: PromptEncoder, captions: list[str], chunk: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """MiniLM token embeddings of all captions: (n, L, 384) float16 and the (n, L) mask of real tokens."""
    parts = [token_embeddings(encoder, captions[i:i + chunk]) for i in range(0, len(captions), chunk)]
    length = max(t.shape[1] for t, _ in parts)
    tokens = torch.zeros((len(captions), length, parts[0][0].shape[2]), dtype=torch.float16)
    masks = torch.zeros((len(captions), length), dtype=torch.bool)
    row = 0
    for t, m in parts:
        tokens[row:row + len(t), :t.shape[1]] = torch.from_numpy(t).half()
        masks[row:row + len(t), :t.shape[1]] = torch.from_numpy(m)
        row += len(t)
    return tokens, masks


def sha256_text(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of training and held-out captions."""
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[HELD_OUT:]), np.sort(order[:HELD_OUT])


def held_out_captions(seed: int = 0) -> list[tuple[str, shapes.Scene]]:
    """The captions the model never saw in training (for its seed)."""
    corpus = shapes.all_captions()
    _, held = split(len(corpus), seed)
    return [corpus[i] for i in held]


def train_judge(steps: int, batch: int, rng: np.random.Generator, log) -> Judge:
    """Fit the judge on generator images, lightly noised and blurred so it reads imperfect samples too."""
    judge = Judge()
    opt = torch.optim.AdamW(judge.parameters(), lr=2e-3)
    for step in range(steps):
        scenes = shapes.random_scenes(batch, rng)
        x = torch.from_numpy(shapes.draw(scenes, rng))
        if rng.random() < 0.5:
            x = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
        x = x + torch.randn_like(x) * float(rng.uniform(0.0, 0.2))
        labels = torch.tensor([s.labels for s in scenes])
        logits = judge(x)
        loss = sum(F.cross_entropy(lg, labels[:, i]) for i, lg in enumerate(logits))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            log(f"judge step {step:5d}  loss {loss.item():.4f}")
    return judge.eval()


def lr_at(step: int, steps: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def save_denoiser(unet, stats: dict[str, torch.Tensor], out: Path) -> None:
    tensors = dict(unet.state_dict())
    tensors.update({f"conditioning.{k}": v for k, v in stats.items()})
    save_tensors(tensors, out / DENOISER_FILE)


def train(out: Path, seed: int, steps: int, batch: int, judge_steps: int, threads: int, spec: DenoiserSpec,
          lr: float = 1e-3, bf16: bool = True, save_every: int = 500, max_captions: int | None = None,
          log=print) -> Manifest:
    """Train judge and denoiser into `out`; returns the manifest written there."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    judge_rng, rng = (np.random.default_rng([seed, part]) for part in (0, 1))   # independent streams
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    corpus = shapes.all_captions()
    if max_captions is not None:        # a sample of the corpus (tests); the held-out split is then of the sample
        keep = np.sort(np.random.default_rng(seed).choice(len(corpus), size=max_captions, replace=False))
        corpus = [corpus[i] for i in keep]
    encoder = PromptEncoder(threads=threads)
    vectors = torch.from_numpy(caption_embeddings(encoder, [c for c, _ in corpus]))
    mean, std = vectors.mean(0), vectors.std(0) + 1e-4
    conditions = (vectors - mean) / std
    train_ids, _ = split(len(corpus), seed)
    log(f"{len(corpus)} captions, {len(train_ids)} for training, {HELD_OUT} held out")
    stats = {"mean": mean, "std": std}
    tokens = spec.conditioning == "tokens"
    if tokens:
        # token embeddings of every caption, once (float16, zero-padded to the longest caption)
        all_tokens, all_masks = caption_tokens(encoder, [c for c, _ in corpus])
        log(f"token embeddings: {tuple(all_tokens.shape)} in {time.perf_counter() - started:.0f} s")
        # per-dimension statistics of real (unpadded) token vectors, from a sample of training captions
        sample = np.random.default_rng([seed, 2]).choice(train_ids, size=min(2048, len(train_ids)), replace=False)
        real = all_tokens[sample][all_masks[sample]].float()
        stats["token_mean"], stats["token_std"] = real.mean(0), real.std(0) + 1e-4

    judge = train_judge(judge_steps, 128, judge_rng, log)
    save_tensors(judge.state_dict(), out / JUDGE_FILE, half=False)

    unet = build_unet(spec)
    ema = copy.deepcopy(unet).eval().requires_grad_(False)
    noise_schedule = train_scheduler(spec)
    alphas = noise_schedule.alphas_cumprod
    snr = alphas / (1 - alphas)
    weight = torch.clamp(snr, max=5.0) / (snr + 1)      # min-SNR-5 for v-prediction
    opt = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=0.01)
    n_params = sum(p.numel() for p in unet.parameters())
    log(f"denoiser: {n_params / 1e6:.2f} M parameters, {steps} steps of batch {batch}")

    manifest = Manifest(spec=spec)
    for step in range(steps):
        ids = train_ids[rng.integers(len(train_ids), size=batch)]
        x0 = torch.from_numpy(shapes.draw([corpus[i][1] for i in ids], rng))
        if tokens:
            tok = (all_tokens[ids].float() - stats["token_mean"]) / stats["token_std"] * all_masks[ids][..., None]
            cond = torch.cat([conditions[ids][:, None, :], tok], dim=1)
        else:
            cond = conditions[ids][:, None, :].clone()
        cond[torch.from_numpy(rng.random(batch) < 0.1)] = 0.0        # unconditioned share
        noise = torch.randn_like(x0)
        t = torch.randint(0, spec.train_timesteps, (batch,))
        noisy = noise_schedule.add_noise(x0, noise, t)
        target = noise_schedule.get_velocity(x0, noise, t)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, lr, warmup=min(200, steps // 10 + 1))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            pred = unet_call(unet, noisy, t, cond)
        loss = (weight[t] * (pred.float() - target).pow(2).mean(dim=(1, 2, 3))).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        decay = min(0.999, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(ema.parameters(), unet.parameters()):
                e.lerp_(p, 1 - decay)
        if step % 100 == 0 or step == steps - 1:
            log(f"step {step:6d}  loss {loss.item():.4f}  {time.perf_counter() - started:7.1f} s")
        if (step + 1) % save_every == 0 or step == steps - 1:
            save_denoiser(ema, stats, out)
            manifest.training = {"seed": seed, "steps": step + 1, "batch": batch, "lr": lr, "bf16": bf16,
                                 "judge_steps": judge_steps, "threads": threads, "parameters": n_params,
                                 "held_out": HELD_OUT, "max_captions": max_captions,
                                 "seconds": round(time.perf_counter() - started, 1)}
            manifest.sha256 = {name: sha256(out / name) for name in (DENOISER_FILE, JUDGE_FILE)}
            manifest.write(out)
    log(f"done in {time.perf_counter() - started:.0f} s -> {out}")
    return manifest


TINY = DenoiserSpec(block_out_channels=(8, 16), layers_per_block=1, attention_levels=(1,))   # token conditioning


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m world.imagegen.train", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=SHIPPED_DIR, help="folder for the weights (default: the shipped one)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=4000, help="denoiser optimiser steps")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--judge-steps", type=int, default=600)
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--no-bf16", action="store_true", help="train in float32 (slower)")
    p.add_argument("--conditioning", choices=("tokens", "pooled"), default=DenoiserSpec.conditioning,
                   help="MiniLM token sequence + pooled vector, or the pooled vector alone")
    p.add_argument("--tiny", action="store_true", help="a toy architecture, for tests")
    p.add_argument("--max-captions", type=int, default=None, help="train on a sample of the captions (tests)")
    args = p.parse_args(argv)
    if args.max_captions is not None and args.max_captions <= HELD_OUT:
        print(f"error: --max-captions must exceed the {HELD_OUT} held-out captions, got {args.max_captions}",
              file=sys.stderr)
        return 2
    for name in ("steps", "batch", "threads"):
        if getattr(args, name) < 1:
            print(f"error: --{name} must be at least 1, got {getattr(args, name)}", file=sys.stderr)
            return 2
    spec = replace(TINY if args.tiny else DenoiserSpec(), conditioning=args.conditioning)
    train(args.out, args.seed, args.steps, args.batch, args.judge_steps, args.threads, spec, lr=args.lr,
          bf16=not args.no_bf16, max_captions=args.max_captions, log=lambda m: print(m, flush=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
