"""Image models the cooperative denoiser can drive: the shipped one, or any diffusers folder on disk.

Both give the denoiser the same handful of operations: initial noise from a
seed, a fresh scheduler of the scenario's kind (`imagegen.scheduler`), one UNet
prediction for a batch, decoding latents to pixels, and conditioning rows for
prompts. Prompt semantics for clustering
always come from MiniLM (`PromptEncoder`), whatever the image model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from world.imagegen.model import (AUTOENCODER_FILE, DENOISER_FILE, JUDGE_FILE, SHIPPED_DIR, Judge, Manifest,
                                  WeightsError, build_autoencoder, build_unet, load_tensors, verified)
from world.imagegen.schedulers import SCHEDULERS, make_scheduler
from world.imagegen.text import PromptEncoder

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def torch_device(name: str) -> torch.device:
    """A torch device by name, refused with a clear message when it is unknown or absent."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise WeightsError(f"unknown device {name!r}: use 'cpu', 'cuda' or 'cuda:N'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise WeightsError(f"device {name!r} asked for, but torch sees no CUDA GPU here: use 'cpu'")
    if device.type not in ("cpu", "cuda", "mps"):
        raise WeightsError(f"device {name!r} is not supported: use 'cpu', 'cuda' or 'cuda:N'")
    return device


def check_scheduler(name: str) -> None:
    if name not in SCHEDULERS:
        raise WeightsError(f"imagegen.scheduler: unknown scheduler {name!r}; use one of {', '.join(SCHEDULERS)}")


class ShippedModel:
    """The project's latent text-to-image model: autoencoder and UNet (see `world.imagegen.model`).

    Args:
        folder: weights folder with its manifest (default: the shipped one).
        device: torch device name.
        dtype: 'float32' (default), 'float16' or 'bfloat16'.
        threads: torch CPU threads (set explicitly; 1 by default).
        encoder: a PromptEncoder to share; one is made when None.
        scheduler: the sampler, one of `schedulers.SCHEDULERS`.
    """

    def __init__(self, folder: Path | str = SHIPPED_DIR, device: str = "cpu", dtype: str = "float32",
                 threads: int = 1, encoder: PromptEncoder | None = None, scheduler: str = "ddim") -> None:
        if dtype not in DTYPES:
            raise WeightsError(f"unknown dtype {dtype!r}: use one of {', '.join(DTYPES)}")
        check_scheduler(scheduler)
        self.scheduler_name = scheduler
        self.folder = Path(folder)
        self.device, self.dtype = torch_device(device), DTYPES[dtype]
        torch.set_num_threads(threads)
        self.manifest = Manifest.read(self.folder)
        tensors = load_tensors(verified(self.folder, DENOISER_FILE, self.manifest))
        self.cond_mean = tensors.pop("conditioning.mean")
        self.cond_std = tensors.pop("conditioning.std")
        self.token_mean = tensors.pop("conditioning.token_mean", None)
        self.token_std = tensors.pop("conditioning.token_std", None)
        self.tokens = self.manifest.spec.conditioning == "tokens"
        if self.tokens and self.token_mean is None:
            raise WeightsError(f"{self.folder / DENOISER_FILE} lacks the token statistics its manifest asks for")
        self.unet = build_unet(self.manifest.spec)
        try:
            self.unet.load_state_dict(tensors)
        except RuntimeError as e:
            raise WeightsError(f"{self.folder / DENOISER_FILE} does not fit the manifest's architecture: "
                               f"{str(e).splitlines()[0]}") from None
        self.unet.to(self.device)
        if self.dtype != torch.float32:
            self.unet.to(self.dtype)
        self.unet.eval().requires_grad_(False)
        spec = self.manifest.spec
        self.autoencoder = build_autoencoder(spec)
        try:
            self.autoencoder.load_state_dict(load_tensors(verified(self.folder, AUTOENCODER_FILE, self.manifest)))
        except RuntimeError as e:
            raise WeightsError(f"{self.folder / AUTOENCODER_FILE} does not fit the manifest's architecture: "
                               f"{str(e).splitlines()[0]}") from None
        self.autoencoder.to(self.device).eval().requires_grad_(False)
        self.latent_scale = spec.latent_scale
        self.latent_shape = (spec.latent_channels, spec.latent_size, spec.latent_size)
        self.encoder = encoder or PromptEncoder(threads=threads)
        self.name = f"shipped:{self.folder.name}"

    def latent_bits(self, bits_per_value: int = 16) -> int:
        """Size of one trajectory's latents on the radio, bits."""
        return int(np.prod(self.latent_shape)) * bits_per_value

    def scheduler(self):
        """A fresh scheduler of this model's kind, for one trajectory."""
        spec = self.manifest.spec
        return make_scheduler(self.scheduler_name, spec.train_timesteps, spec.beta_schedule, spec.prediction_type)

    def noise(self, seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(int(seed))
        return torch.randn((1, *self.latent_shape), generator=g).to(self.device, self.dtype)

    def conditions(self, prompts: Sequence[str]) -> torch.Tensor:
        """Conditioning rows (n, 1 + L, 384): the standardised pooled MiniLM embedding, then the standardised
        token embeddings zero-padded to the longest prompt (L = 0 for a pooled-only model)."""
        return condition_rows(self.encoder, list(prompts), self.cond_mean, self.cond_std, self.token_mean,
                              self.token_std).to(self.device, self.dtype)

    def prefix_condition(self, rows: torch.Tensor) -> torch.Tensor:
        """Conditioning of a cluster's shared prefix: its first prompt's row for a token model (token
        sequences of different prompts do not average), the mean row (centroid) for a pooled-only one."""
        return rows[0] if self.tokens else rows.mean(0)

    def predict(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return unet_call(self.unet, x, t, cond)

    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """(n, H, W, 3) uint8 pixels from scaled latents."""
        with torch.no_grad():
            images = self.autoencoder.decode(latents.float() / self.latent_scale).sample
        x = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return x.permute(0, 2, 3, 1).cpu().numpy()

    def encode(self, images: np.ndarray) -> torch.Tensor:
        """Scaled latents (n, C, h, w) of images (n, H, W, 3 uint8): the autoencoder's mean."""
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        with torch.no_grad():
            return self.autoencoder.encode(x.to(self.device)).latent_dist.mode() * self.latent_scale

    def roundtrip(self, images: np.ndarray) -> np.ndarray:
        """Images (n, H, W, 3 uint8) through the autoencoder and back: the most detail this model can draw."""
        return self.decode(self.encode(images))


def condition_rows(encoder: PromptEncoder, prompts: list[str], mean: torch.Tensor, std: torch.Tensor,
                   token_mean: torch.Tensor | None, token_std: torch.Tensor | None,
                   pooled: np.ndarray | None = None) -> torch.Tensor:
    """(n, 1 + L, 384) conditioning rows (see `ShippedModel.conditions`); `pooled`: the prompts' MiniLM
    sentence embeddings when already at hand."""
    raw = encoder.encode(prompts) if pooled is None else pooled
    pooled = (torch.from_numpy(raw) - mean) / std
    if token_mean is None:
        return pooled[:, None, :]
    from world.imagegen.text import token_embeddings

    tokens, mask = token_embeddings(encoder, prompts)
    tokens = (torch.from_numpy(tokens) - token_mean) / token_std * torch.from_numpy(mask)[..., None]
    return torch.cat([pooled[:, None, :], tokens], dim=1)


def unet_call(unet, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
    """The shipped UNet on conditioning rows: pooled row to the class embedding, the rest to cross-attention
    (padding masked); a pooled-only row is its own one-token sequence."""
    pooled = cond[:, 0]
    sequence = cond[:, 1:] if cond.shape[1] > 1 else cond
    mask = sequence.abs().sum(-1) > 0
    mask[:, 0] |= ~mask.any(1)          # an unconditioned (all-zero) row still attends to something
    return unet(x, t, encoder_hidden_states=sequence, encoder_attention_mask=mask, class_labels=pooled).sample


def load_judge(folder: Path | str = SHIPPED_DIR) -> Judge:
    """The fidelity judge from a weights folder, sha256-checked."""
    folder = Path(folder)
    manifest = Manifest.read(folder)
    judge = Judge()
    try:
        judge.load_state_dict(load_tensors(verified(folder, JUDGE_FILE, manifest)))
    except RuntimeError as e:
        raise WeightsError(f"{folder / JUDGE_FILE} does not fit the judge: {str(e).splitlines()[0]}") from None
    return judge.eval().requires_grad_(False)


class DiffusersFolderModel:
    """A user's own diffusers text-to-image pipeline folder (Stable Diffusion layout) on disk.

    Loads `unet/`, `vae/`, `text_encoder/`, `tokenizer/` and `scheduler/` from the
    folder only (no hub); the DDIM scheduler is built from the folder's scheduler
    config. Conditioning rows are the text encoder's hidden states.
    """

    def __init__(self, folder: Path | str, device: str = "cpu", dtype: str = "float32", threads: int = 1,
                 scheduler: str = "ddim") -> None:
        from world.imagegen.text import offline

        offline()
        check_scheduler(scheduler)
        self.scheduler_name = scheduler
        folder = Path(folder)
        if not (folder / "unet").is_dir():
            raise WeightsError(f"{folder} is not a diffusers pipeline folder (no unet/ inside): give the folder "
                               "that holds unet/, vae/, text_encoder/, tokenizer/ and scheduler/")
        if dtype not in DTYPES:
            raise WeightsError(f"unknown dtype {dtype!r}: use one of {', '.join(DTYPES)}")
        from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTokenizer

        torch.set_num_threads(threads)
        self.device, self.dtype = torch_device(device), DTYPES[dtype]
        load = {"local_files_only": True, "torch_dtype": self.dtype}
        try:
            self.unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet", **load)
            self.vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", **load)
            self.text_encoder = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder", local_files_only=True,
                                                              dtype=self.dtype)
            self.tokenizer = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer", local_files_only=True)
            self._scheduler_config = DDIMScheduler.load_config(folder, subfolder="scheduler")
        except (OSError, ValueError) as e:
            raise WeightsError(f"cannot load the diffusers model in {folder}: {e}") from None
        for m in (self.unet, self.vae, self.text_encoder):
            m.to(self.device).eval().requires_grad_(False)
        self.encoder = PromptEncoder(threads=threads)
        self.name = f"diffusers:{folder.name}"
        size = self.unet.config.sample_size
        self.latent_shape = (self.unet.config.in_channels, size, size)

    def latent_bits(self, bits_per_value: int = 16) -> int:
        return int(np.prod(self.latent_shape)) * bits_per_value

    def scheduler(self):
        """The scenario's scheduler kind, configured from the folder's scheduler config."""
        cls = type(make_scheduler(self.scheduler_name, 1000, "linear", "epsilon"))
        try:
            return cls.from_config(self._scheduler_config)
        except (ValueError, NotImplementedError, TypeError) as e:
            raise WeightsError(f"imagegen.scheduler: {self.scheduler_name!r} cannot run this model's schedule "
                               f"({e}); use one of {', '.join(SCHEDULERS)} that fits it, e.g. 'ddim'") from None

    def noise(self, seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(int(seed))
        return torch.randn((1, *self.latent_shape), generator=g).to(self.device, self.dtype)

    def conditions(self, prompts: Sequence[str]) -> torch.Tensor:
        tokens = self.tokenizer(list(prompts), padding="max_length", max_length=self.tokenizer.model_max_length,
                                truncation=False, return_tensors="pt")
        if tokens.input_ids.shape[1] > self.tokenizer.model_max_length:
            raise WeightsError(f"a prompt is longer than the text encoder's {self.tokenizer.model_max_length} "
                               "tokens: shorten it")
        with torch.no_grad():
            return self.text_encoder(tokens.input_ids.to(self.device))[0]

    def prefix_condition(self, rows: torch.Tensor) -> torch.Tensor:
        """A cluster's prefix follows its first prompt."""
        return rows[0]

    def predict(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.unet(x, t, encoder_hidden_states=cond).sample

    def decode(self, latents: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            images = self.vae.decode(latents / self.vae.config.scaling_factor).sample
        x = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return x.permute(0, 2, 3, 1).cpu().numpy()


def load_image_model(model: str, device: str = "cpu", dtype: str = "float32", threads: int = 1,
                     scheduler: str = "ddim"):
    """'shipped' for the project's model, else a path to a diffusers folder or a weights folder with a manifest."""
    if model == "shipped":
        return ShippedModel(device=device, dtype=dtype, threads=threads, scheduler=scheduler)
    path = Path(model)
    if not path.exists():
        raise WeightsError(f"model folder {path} does not exist: give 'shipped' or a diffusers folder")
    if (path / "manifest.json").is_file():
        return ShippedModel(path, device=device, dtype=dtype, threads=threads, scheduler=scheduler)
    model = DiffusersFolderModel(path, device=device, dtype=dtype, threads=threads, scheduler=scheduler)
    model.scheduler()       # refuse a scheduler the folder cannot use before any run starts
    return model
