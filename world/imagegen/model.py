"""The shipped text-to-image model and its judge: architecture, weight files, loading.

The model has Stable Diffusion's shape, scaled down for a CPU:
- Autoencoder: a `diffusers.AutoencoderKL` trained here that maps a 48x48 RGB
  image to a 12x12 latent of `latent_channels` channels (8x fewer values) and
  back. Latents are what the server hands to a phone over the radio; the phone
  runs the last steps on them and decodes.
- Denoiser: a `diffusers.UNet2DConditionModel` on those latents (scaled by
  `latent_scale` to unit spread, as SD's `scaling_factor`), v-prediction,
  conditioned on MiniLM twice over: cross-attention reads
the prompt's standardised token embeddings (as Stable Diffusion reads CLIP's),
and the standardised pooled sentence embedding goes through the
class-embedding projection that is added to the time embedding. (With
`conditioning: pooled` the pooled vector is also the one-token sequence; that
variant cannot tell "a blue disc against white" from "a white disc against
blue", whose pooled embeddings have cosine 0.99.)

A conditioning row for one prompt is a (1 + L, 384) tensor: the pooled vector,
then L token vectors, zero rows marking padding.

Judge: a small CNN that reads shape, colours, textures, size and place off an
image; it measures the fidelity of what the denoiser drew, and its pooled
features are the embedding the distribution distance (KID) is computed on.

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

from world.imagegen.shapes import COLOUR_NAMES, PLACES, SHAPES, SIZE, SIZES, TEXTURES
from world.imagegen.text import EMBED_DIM

SHIPPED_DIR = Path(__file__).parent / "weights"
DENOISER_FILE = "denoiser.safetensors"
AUTOENCODER_FILE = "autoencoder.safetensors"
JUDGE_FILE = "judge.safetensors"
MANIFEST_FILE = "manifest.json"


class WeightsError(RuntimeError):
    """A weight file is missing, corrupted or does not fit the architecture."""


@dataclass(frozen=True)
class DenoiserSpec:
    """Architecture of the shipped autoencoder and denoiser (stored in the manifest)."""

    block_out_channels: tuple[int, ...] = (64, 128, 128)
    layers_per_block: int = 1
    attention_levels: tuple[int, ...] = (1, 2)   # which resolutions get cross-attention blocks
    train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    prediction_type: str = "v_prediction"
    conditioning: str = "tokens"                 # "tokens": token sequence + pooled vector; "pooled": pooled only
    ae_block_out_channels: tuple[int, ...] = (16, 32, 64)   # one level per factor 2 after the first: 48 -> 12
    latent_channels: int = 8
    latent_scale: float = 1.0                    # multiplies the autoencoder's latents to unit spread (measured)

    @property
    def latent_size(self) -> int:
        """Side of a latent, in latent pixels."""
        return SIZE // 2 ** (len(self.ae_block_out_channels) - 1)


def build_unet(spec: DenoiserSpec):
    """A fresh UNet2DConditionModel of the given architecture."""
    from diffusers import UNet2DConditionModel

    levels = len(spec.block_out_channels)
    down = [("CrossAttnDownBlock2D" if i in spec.attention_levels else "DownBlock2D") for i in range(levels)]
    up = [("CrossAttnUpBlock2D" if levels - 1 - i in spec.attention_levels else "UpBlock2D") for i in range(levels)]
    return UNet2DConditionModel(
        sample_size=spec.latent_size, in_channels=spec.latent_channels, out_channels=spec.latent_channels,
        block_out_channels=tuple(spec.block_out_channels), layers_per_block=spec.layers_per_block,
        down_block_types=tuple(down), up_block_types=tuple(up), mid_block_type="UNetMidBlock2DCrossAttn",
        cross_attention_dim=EMBED_DIM, attention_head_dim=8, norm_num_groups=8,
        class_embed_type="projection", projection_class_embeddings_input_dim=EMBED_DIM,
    )


def build_autoencoder(spec: DenoiserSpec):
    """A fresh AutoencoderKL of the given architecture (no attention: the images are small)."""
    from diffusers import AutoencoderKL

    levels = len(spec.ae_block_out_channels)
    return AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels, block_out_channels=tuple(spec.ae_block_out_channels),
        layers_per_block=1, latent_channels=spec.latent_channels, norm_num_groups=16, sample_size=SIZE,
        mid_block_add_attention=False,
    )


def train_scheduler(spec: DenoiserSpec):
    """The DDPM noise schedule the denoiser was trained with."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=spec.train_timesteps, beta_schedule=spec.beta_schedule,
                         prediction_type=spec.prediction_type, clip_sample=False)


# what the judge reads off an image, with its classes
JUDGED: dict[str, tuple[str, ...]] = {
    "shape": SHAPES, "fg": COLOUR_NAMES, "bg": COLOUR_NAMES, "fg_texture": TEXTURES, "bg_texture": TEXTURES,
    "size": tuple(SIZES), "place": tuple(PLACES),
}


class Judge(nn.Module):
    """CNN classifier: logits for every attribute of JUDGED, from pooled features (also the KID embedding)."""

    FEATURES = 192

    def __init__(self) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU(),
                                 nn.Conv2d(cout, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU(),
                                 nn.MaxPool2d(2))

        self.trunk = nn.Sequential(block(3, 32), block(32, 64), block(64, 96))     # 48 -> 6
        self.heads = nn.ModuleDict({name: nn.Linear(self.FEATURES, len(classes)) for name, classes in JUDGED.items()})

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(n, 192): average- and max-pooled trunk features."""
        h = self.trunk(images)
        return torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.features(images)
        return {name: head(h) for name, head in self.heads.items()}


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
