"""The shipped text-to-image model and its judge: architecture, weight files, loading.

Denoiser: a `diffusers.UNet2DConditionModel` in pixel space (32x32 RGB, no
VAE), v-prediction, conditioned on MiniLM twice over: cross-attention reads
the prompt's standardised token embeddings (as Stable Diffusion reads CLIP's),
and the standardised pooled sentence embedding goes through the
class-embedding projection that is added to the time embedding. (With
`conditioning: pooled` the pooled vector is also the one-token sequence; that
variant cannot tell "a blue disc against white" from "a white disc against
blue", whose pooled embeddings have cosine 0.99.)

A conditioning row for one prompt is a (1 + L, 384) tensor: the pooled vector,
then L token vectors, zero rows marking padding.

Judge: a small CNN that reads shape, foreground colour and background colour
off an image; it measures the fidelity of what the denoiser drew.

Weight files are safetensors; a folder of them carries `manifest.json` with
each file's sha256, which is checked before anything is loaded.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from world.imagegen.shapes import COLOUR_NAMES, SHAPES, SIZE
from world.imagegen.text import EMBED_DIM

SHIPPED_DIR = Path(__file__).parent / "weights"
DENOISER_FILE = "denoiser.safetensors"
JUDGE_FILE = "judge.safetensors"
MANIFEST_FILE = "manifest.json"


class WeightsError(RuntimeError):
    """A weight file is missing, corrupted or does not fit the architecture."""


@dataclass(frozen=True)
class DenoiserSpec:
    """Architecture of the shipped denoiser (stored in the manifest)."""

    block_out_channels: tuple[int, ...] = (48, 96, 128)
    layers_per_block: int = 1
    attention_levels: tuple[int, ...] = (2,)     # which resolutions get cross-attention blocks
    train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    prediction_type: str = "v_prediction"
    conditioning: str = "tokens"                 # "tokens": token sequence + pooled vector; "pooled": pooled only


def build_unet(spec: DenoiserSpec):
    """A fresh UNet2DConditionModel of the given architecture."""
    from diffusers import UNet2DConditionModel

    levels = len(spec.block_out_channels)
    down = [("CrossAttnDownBlock2D" if i in spec.attention_levels else "DownBlock2D") for i in range(levels)]
    up = [("CrossAttnUpBlock2D" if levels - 1 - i in spec.attention_levels else "UpBlock2D") for i in range(levels)]
    return UNet2DConditionModel(
        sample_size=SIZE, in_channels=3, out_channels=3,
        block_out_channels=tuple(spec.block_out_channels), layers_per_block=spec.layers_per_block,
        down_block_types=tuple(down), up_block_types=tuple(up), mid_block_type="UNetMidBlock2DCrossAttn",
        cross_attention_dim=EMBED_DIM, attention_head_dim=8, norm_num_groups=8,
        class_embed_type="projection", projection_class_embeddings_input_dim=EMBED_DIM,
    )


def train_scheduler(spec: DenoiserSpec):
    """The DDPM noise schedule the denoiser was trained with."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=spec.train_timesteps, beta_schedule=spec.beta_schedule,
                         prediction_type=spec.prediction_type, clip_sample=False)


def sampling_scheduler(spec: DenoiserSpec):
    """DDIM over the training schedule, with trailing timestep spacing (better at few steps)."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(num_train_timesteps=spec.train_timesteps, beta_schedule=spec.beta_schedule,
                         prediction_type=spec.prediction_type, clip_sample=True, set_alpha_to_one=True,
                         timestep_spacing="trailing")


class Judge(nn.Module):
    """CNN classifier: logits for shape, foreground colour and background colour."""

    def __init__(self) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU(),
                                 nn.Conv2d(cout, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU(),
                                 nn.MaxPool2d(2))

        self.features = nn.Sequential(block(3, 32), block(32, 64), block(64, 64), nn.AdaptiveAvgPool2d(1),
                                      nn.Flatten())
        self.shape = nn.Linear(64, len(SHAPES))
        self.fg = nn.Linear(64, len(COLOUR_NAMES))
        self.bg = nn.Linear(64, len(COLOUR_NAMES))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.features(images)
        return self.shape(h), self.fg(h), self.bg(h)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Manifest:
    """What a weights folder holds: architecture, conditioning statistics' origin, hashes, training record."""

    spec: DenoiserSpec
    sha256: dict[str, str] = field(default_factory=dict)
    training: dict = field(default_factory=dict)

    def write(self, folder: Path) -> None:
        data = asdict(self)
        tmp = folder / (MANIFEST_FILE + ".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(folder / MANIFEST_FILE)

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        path = Path(folder) / MANIFEST_FILE
        if not path.is_file():
            raise WeightsError(f"{path} is missing: point the model at a folder written by "
                               "`python -m world.imagegen.train`")
        try:
            data = json.loads(path.read_text())
            spec = DenoiserSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in data["spec"].items()})
            return cls(spec=spec, sha256=dict(data["sha256"]), training=dict(data.get("training", {})))
        except (ValueError, KeyError, TypeError) as e:
            raise WeightsError(f"{path} is not a valid manifest ({e}); retrain or restore the file") from None


def verified(folder: Path, name: str, manifest: Manifest) -> Path:
    """Path of weight file `name` after checking its sha256 against the manifest."""
    path = Path(folder) / name
    if not path.is_file():
        raise WeightsError(f"weight file {path} is missing; restore it (git checkout) or retrain")
    want = manifest.sha256.get(name)
    got = sha256(path)
    if want != got:
        raise WeightsError(f"weight file {path} is corrupted: sha256 {got[:12]}... does not match the manifest's "
                           f"{str(want)[:12]}...; restore it (git checkout) or retrain")
    return path


def save_tensors(tensors: dict[str, torch.Tensor], path: Path, half: bool = True) -> None:
    """Write a safetensors file atomically (float tensors as float16 when `half`)."""
    from safetensors.torch import save_file

    out = {k: (v.detach().half() if half and v.is_floating_point() else v.detach()).contiguous().cpu()
           for k, v in tensors.items()}
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(out, str(tmp))
    tmp.replace(path)


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(path)).items()}
    except Exception as e:  # safetensors raises its own error types for damaged headers
        raise WeightsError(f"cannot read {path} ({e}); restore it (git checkout) or retrain") from None
