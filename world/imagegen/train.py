"""Train the shipped text-to-image model and its judge: `python -m world.imagegen.train`.

Reproducible from `--seed` (same seed, same threads, same files). The default
budget fits in about an hour on 2 CPU cores; `--tiny` trains a toy
architecture for a few steps (tests use it). `--device cuda` trains on a GPU
with the same seed and recipe (the manifest records where it ran).

Four stages, each from its own random stream:
1. Autoencoder (AutoencoderKL, 48x48 RGB <-> 12x12 latents): L1 + L2
   reconstruction with a small KL term, on freshly drawn images.
2. Judge (CNN): every attribute of the scene, on drawn images and their
   autoencoder reconstructions (what a perfect generation looks like), with a
   little noise.
3. Latent scale: 1 / the spread of the autoencoder's latents over drawn
   images (Stable Diffusion's `scaling_factor`).
4. Denoiser (UNet2DConditionModel on the scaled latents): v-prediction on a
   cosine ('squaredcos_cap_v2') schedule with min-SNR-5 loss weighting;
   AdamW with warm-up and cosine decay; an exponential moving average of the
   weights is what ships. One prompt in ten is trained unconditioned (a zero
   embedding) so classifier-free guidance is available, though the simulator
   runs without it.

Conditioning: MiniLM token embeddings for cross-attention and the pooled
sentence embedding for the class embedding, both standardised per dimension
(statistics from the training captions, shipped with the weights).

Captions: TRAIN_CAPTIONS drawn at random from the world's scenes and
wordings; HELD_OUT further captions that the training set does not contain
are kept for the quality measurement (`held_out_captions`).
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
from world.imagegen.model import (AUTOENCODER_FILE, DENOISER_FILE, JUDGE_FILE, JUDGED, SHIPPED_DIR, DenoiserSpec,
                                  Judge, Manifest, build_autoencoder, build_unet, load_tensors, save_tensors,
                                  sha256, train_scheduler)
from world.imagegen.pipeline import unet_call
from world.imagegen.text import PromptEncoder, token_embeddings

TRAIN_CAPTIONS = 24_000
HELD_OUT = 200


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


def corpus(seed: int, n_train: int = TRAIN_CAPTIONS) -> tuple[list[tuple[str, shapes.Scene]],
                                                               list[tuple[str, shapes.Scene]]]:
    """(training captions, held-out captions): random captions, the held-out ones absent from training."""
    rng = np.random.default_rng([seed, 10])
    train = list(dict(shapes.random_captions(n_train, rng)).items())
    seen = {c for c, _ in train}
    held: dict[str, shapes.Scene] = {}
    while len(held) < HELD_OUT:
        for c, s in shapes.random_captions(HELD_OUT, rng):
            if c not in seen and len(held) < HELD_OUT:
                held.setdefault(c, s)
    return train, list(held.items())


def held_out_captions(seed: int = 0) -> list[tuple[str, shapes.Scene]]:
    """The captions the model never saw in training (for its seed)."""
    return corpus(seed)[1]


def drawn_batch(n: int, rng: np.random.Generator) -> tuple[torch.Tensor, list[shapes.Scene]]:
    scenes = shapes.random_scenes(n, rng)
    return torch.from_numpy(shapes.draw(scenes, rng)), scenes


def train_autoencoder(spec: DenoiserSpec, steps: int, batch: int, rng: np.random.Generator, device: torch.device,
                      log) -> torch.nn.Module:
    """Fit the autoencoder on freshly drawn images."""
    ae = build_autoencoder(spec).to(device)
    opt = torch.optim.AdamW(ae.parameters(), lr=1e-3, weight_decay=0.0)
    for step in range(steps):
        x, _ = drawn_batch(batch, rng)
        x = x.to(device)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, 1e-3, warmup=min(100, steps // 10 + 1))
        posterior = ae.encode(x).latent_dist
        noise = torch.from_numpy(rng.standard_normal(posterior.mean.shape, dtype=np.float32)).to(device)
        z = posterior.mean + posterior.std * noise
        rec = ae.decode(z).sample
        loss = F.l1_loss(rec, x) + F.mse_loss(rec, x) + 1e-6 * posterior.kl().mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ae.parameters(), 1.0)
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            log(f"autoencoder step {step:5d}  loss {loss.item():.4f}")
    return ae.eval().requires_grad_(False)


def reconstruct(ae, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return ae.decode(ae.encode(x).latent_dist.mode()).sample.clamp(-1, 1)


def train_judge(ae, steps: int, batch: int, rng: np.random.Generator, device: torch.device, log) -> Judge:
    """Fit the judge on drawn images and their reconstructions, lightly noised, for every attribute."""
    judge = Judge().to(device)
    opt = torch.optim.AdamW(judge.parameters(), lr=2e-3)
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, 2e-3, warmup=min(100, steps // 10 + 1))
        x, scenes = drawn_batch(batch, rng)
        x = x.to(device)
        half = batch // 2
        x = torch.cat([x[:half], reconstruct(ae, x[half:])])
        # quantised to 8 bits as every judged image is, plus a little noise
        x = ((x + 1) * 127.5).round() / 127.5 - 1
        x = x + torch.from_numpy(rng.standard_normal(x.shape, dtype=np.float32)).to(device) * float(rng.uniform(0, 0.05))
        rows = [(*s.labels, JUDGED["size"].index(s.size), JUDGED["place"].index(s.place)) for s in scenes]
        labels = dict(zip(JUDGED, torch.tensor(rows, device=device).T))
        logits = judge(x)
        loss = sum(F.cross_entropy(logits[name], labels[name]) for name in JUDGED)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            log(f"judge step {step:5d}  loss {loss.item():.4f}")
    return judge.eval().requires_grad_(False)


def retrain_judge(out: Path, seed: int, judge_steps: int, threads: int, spec: DenoiserSpec, device: str = "cpu",
                  log=print) -> None:
    """Train the judge again on the autoencoder in `out`, as `train` would with `judge_steps` (same seed streams
    and the same torch state: the judge's initial weights follow the autoencoder's, and neither training draws
    from torch's generator)."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    dev = torch.device(device)
    judge_rng = np.random.default_rng([seed, 1])
    ae = build_autoencoder(spec).to(dev)
    ae.load_state_dict(load_tensors(out / AUTOENCODER_FILE))
    ae.eval().requires_grad_(False)
    judge = train_judge(ae, judge_steps, 64, judge_rng, dev, log)
    save_tensors(judge.state_dict(), out / JUDGE_FILE, half=False)
    manifest_path = out / "manifest.json"
    if manifest_path.is_file():
        manifest = Manifest.read(out)
        manifest.sha256[JUDGE_FILE] = sha256(out / JUDGE_FILE)
        manifest.training["judge_steps"] = judge_steps
        manifest.write(out)


def latent_scale(ae, rng: np.random.Generator, device: torch.device, n: int = 1024) -> float:
    """1 / standard deviation of the autoencoder's latents (their means) over n drawn images."""
    x, _ = drawn_batch(n, rng)
    with torch.no_grad():
        z = torch.cat([ae.encode(x[i:i + 128].to(device)).latent_dist.mode() for i in range(0, n, 128)])
    return float(1.0 / z.float().std())


def lr_at(step: int, steps: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def save_denoiser(unet, stats: dict[str, torch.Tensor], out: Path) -> None:
    tensors = dict(unet.state_dict())
    tensors.update({f"conditioning.{k}": v for k, v in stats.items()})
    save_tensors(tensors, out / DENOISER_FILE)


def train(out: Path, seed: int, steps: int, batch: int, judge_steps: int, ae_steps: int, threads: int,
          spec: DenoiserSpec, lr: float = 1e-3, save_every: int = 500, n_captions: int = TRAIN_CAPTIONS,
          device: str = "cpu", reuse: bool = False, log=print) -> Manifest:
    """Train autoencoder, judge and denoiser into `out`; returns the manifest written there.

    With `reuse`, an autoencoder and a judge already in `out` (from an earlier run with the same
    architecture) are loaded instead of trained again, and only the denoiser is trained.
    """
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    dev = torch.device(device)
    ae_rng, judge_rng, scale_rng, rng = (np.random.default_rng([seed, part]) for part in (0, 1, 2, 3))
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    record = {"seed": seed, "steps": 0, "batch": batch, "lr": lr, "ae_steps": ae_steps, "judge_steps": judge_steps,
              "threads": threads, "device": device, "captions": n_captions, "held_out": HELD_OUT}

    train_set, _ = corpus(seed, n_captions)
    captions = [c for c, _ in train_set]
    encoder = PromptEncoder(threads=threads)
    vectors = torch.from_numpy(encoder.encode(captions))
    mean, std = vectors.mean(0), vectors.std(0) + 1e-4
    conditions = (vectors - mean) / std
    stats = {"mean": mean, "std": std}
    tokens = spec.conditioning == "tokens"
    if tokens:
        all_tokens, all_masks = caption_tokens(encoder, captions)
        sample = np.random.default_rng([seed, 4]).choice(len(captions), size=min(2048, len(captions)), replace=False)
        real = all_tokens[sample][all_masks[sample]].float()
        stats["token_mean"], stats["token_std"] = real.mean(0), real.std(0) + 1e-4
    log(f"{len(captions)} training captions embedded in {time.perf_counter() - started:.0f} s")

    if reuse and (out / AUTOENCODER_FILE).is_file() and (out / JUDGE_FILE).is_file():
        ae = build_autoencoder(spec).to(dev)
        ae.load_state_dict(load_tensors(out / AUTOENCODER_FILE))
        ae.eval().requires_grad_(False)
        judge = Judge().to(dev)
        judge.load_state_dict(load_tensors(out / JUDGE_FILE))
        judge.eval().requires_grad_(False)
        record["reused"] = "autoencoder and judge of an earlier run"
        log(f"reusing {out / AUTOENCODER_FILE} and {out / JUDGE_FILE}")
    else:
        ae = train_autoencoder(spec, ae_steps, 32, ae_rng, dev, log)
        save_tensors(ae.state_dict(), out / AUTOENCODER_FILE, half=False)
        judge = train_judge(ae, judge_steps, 64, judge_rng, dev, log)
        save_tensors(judge.state_dict(), out / JUDGE_FILE, half=False)
    spec = replace(spec, latent_scale=round(latent_scale(ae, scale_rng, dev), 5))
    log(f"autoencoder and judge done in {time.perf_counter() - started:.0f} s; latent scale {spec.latent_scale}")

    unet = build_unet(spec).to(dev)
    ema = copy.deepcopy(unet).eval().requires_grad_(False)
    noise_schedule = train_scheduler(spec)
    alphas = noise_schedule.alphas_cumprod
    snr = alphas / (1 - alphas)
    weight = (torch.clamp(snr, max=5.0) / (snr + 1)).to(dev)      # min-SNR-5 for v-prediction
    opt = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=0.01)
    n_params = sum(p.numel() for p in unet.parameters())
    record["parameters"] = n_params
    log(f"denoiser: {n_params / 1e6:.2f} M parameters, {steps} steps of batch {batch}")

    manifest = Manifest(spec=spec)
    for step in range(steps):
        ids = rng.integers(len(captions), size=batch)
        x = torch.from_numpy(shapes.draw([train_set[i][1] for i in ids], rng)).to(dev)
        with torch.no_grad():
            x0 = ae.encode(x).latent_dist.mode() * spec.latent_scale
        if tokens:
            tok = (all_tokens[ids].float() - stats["token_mean"]) / stats["token_std"] * all_masks[ids][..., None]
            cond = torch.cat([conditions[ids][:, None, :], tok], dim=1)
        else:
            cond = conditions[ids][:, None, :].clone()
        cond[torch.from_numpy(rng.random(batch) < 0.1)] = 0.0        # unconditioned share
        cond = cond.to(dev)
        noise = torch.from_numpy(rng.standard_normal(x0.shape, dtype=np.float32)).to(dev)
        t = torch.from_numpy(rng.integers(0, spec.train_timesteps, size=batch)).to(dev)
        noisy = noise_schedule.add_noise(x0, noise, t)
        target = noise_schedule.get_velocity(x0, noise, t)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, lr, warmup=min(200, steps // 10 + 1))
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
            save_denoiser(ema, {k: v.cpu() for k, v in stats.items()}, out)
            record.update(steps=step + 1, seconds=round(time.perf_counter() - started, 1))
            manifest.training = dict(record)
            manifest.sha256 = {name: sha256(out / name) for name in (DENOISER_FILE, AUTOENCODER_FILE, JUDGE_FILE)}
            manifest.write(out)
    log(f"done in {time.perf_counter() - started:.0f} s -> {out}")
    return manifest


TINY = DenoiserSpec(block_out_channels=(8, 16), layers_per_block=1, attention_levels=(1,),
                    ae_block_out_channels=(16, 16, 16), latent_channels=4)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m world.imagegen.train", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=SHIPPED_DIR, help="folder for the weights (default: the shipped one)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=2200, help="denoiser optimiser steps")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--ae-steps", type=int, default=1200, help="autoencoder optimiser steps (batch 32)")
    p.add_argument("--judge-steps", type=int, default=1200, help="judge optimiser steps (batch 64)")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--device", default="cpu", help="cpu, or cuda when a GPU is at hand")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--conditioning", choices=("tokens", "pooled"), default=DenoiserSpec.conditioning,
                   help="MiniLM token sequence + pooled vector, or the pooled vector alone")
    p.add_argument("--tiny", action="store_true", help="a toy architecture, for tests")
    p.add_argument("--captions", type=int, default=TRAIN_CAPTIONS, help="training captions (tests use fewer)")
    p.add_argument("--judge-only", action="store_true",
                   help="train only the judge again, on the autoencoder already in --out")
    p.add_argument("--reuse", action="store_true",
                   help="load the autoencoder and judge already in --out and train only the denoiser")
    args = p.parse_args(argv)
    for name in ("steps", "batch", "threads", "ae_steps", "judge_steps", "captions"):
        if getattr(args, name) < 1:
            print(f"error: --{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}", file=sys.stderr)
            return 2
    spec = replace(TINY if args.tiny else DenoiserSpec(), conditioning=args.conditioning)
    if args.judge_only:
        retrain_judge(args.out, args.seed, args.judge_steps, args.threads, spec, args.device,
                      log=lambda m: print(m, flush=True))
        return 0
    train(args.out, args.seed, args.steps, args.batch, args.judge_steps, args.ae_steps, args.threads, spec,
          lr=args.lr, n_captions=args.captions, device=args.device, reuse=args.reuse,
          log=lambda m: print(m, flush=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
