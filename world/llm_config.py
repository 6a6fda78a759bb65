"""How persona feedback reaches a language model (YAML `feedback.llm`), where an Ollama server is, and the error
a backend raises when it cannot be set up. Plain pydantic: checking a scenario imports no language-model library
(`world.llm` runs them).
"""

from __future__ import annotations

import os
import urllib.parse
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_OLLAMA_HOST = "http://127.0.0.1:11434"
SAMPLING_SEED = 1234          # fixed so that a run with temperature > 0 repeats on the same backend


class LlmSetupError(RuntimeError):
    """A backend cannot be set up; the message says what is wrong and what to do."""


class LlmConfig(BaseModel):
    """How persona feedback reaches a language model (YAML: feedback.llm)."""

    # strict: a number is a number (true is not 1, 4.5 is not a count); no NaN or infinity
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    backend: Literal["embedded", "ollama"] = Field(
        "embedded", description="embedded: llama.cpp in this process; ollama: a running Ollama server.")
    model: Literal["qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b", "smollm2-135m"] = Field(
        "qwen2.5-coder-1.5b", description="Embedded model (a GGUF file shipped in PyPI packages): "
                                          "qwen2.5-coder-0.5b is about twice as fast and far less faithful.")
    ollama_model: str = Field(
        "qwen2.5:0.5b", min_length=1, max_length=200,
        description="Ollama model name (as in `ollama list`), backend ollama only.")
    ollama_host: str | None = Field(
        None, description="Ollama server URL; None reads OLLAMA_HOST when the backend is built, "
                          f"else {DEFAULT_OLLAMA_HOST}.")
    threads: int = Field(1, ge=1, le=64, description="llama.cpp CPU threads per embedded model instance, count.")
    # each instance holds a key-value cache of context_tokens tokens; the shipped models know 32768 at most
    context_tokens: int = Field(
        2048, ge=256, le=32768, description="Context window of an embedded model instance, tokens.")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="Sampling temperature, 0 = greedy (repeatable).")
    top_logprobs: int = Field(
        10, ge=0, le=20, description="Alternatives per token whose log-probabilities are returned, count; "
                                      "0 turns the expected rating off (embedded only).")
    max_tokens: int = Field(150, ge=16, le=4096, description="Most tokens one answer may have, tokens.")
    prompt_cache: bool = Field(
        True, description="Reuse the key-value cache of the previous request's common prefix (llama.cpp's "
                          "cache_prompt): a persona's instructions and examples are read once, not per answer "
                          "(embedded only).")
    max_retries: int = Field(2, ge=0, le=10, description="Re-asks after an invalid answer, count.")
    timeout_s: float = Field(60.0, gt=0, le=3600, description="Limit for one request to the model server, s.")
    cache_dir: str = Field(
        ".cache/aigcsim", min_length=1, max_length=4096,
        description="Folder for the assembled embedded model file, relative to the working directory.")

    @field_validator("ollama_model", "ollama_host", "cache_dir")
    @classmethod
    def _printable(cls, text: str | None) -> str | None:
        if text is not None and len(text) > 4096:
            raise ValueError(f"{len(text)} characters; at most 4096 are allowed")
        if text is not None and not text.isprintable():
            raise ValueError(f"{text[:40]!r} contains control characters")
        return text

    @model_validator(mode="after")
    def _answer_fits_context(self) -> LlmConfig:
        if self.max_tokens >= self.context_tokens:
            raise ValueError(f"max_tokens ({self.max_tokens}) must be less than context_tokens "
                             f"({self.context_tokens}): the instructions need room too")
        return self


def ollama_host(cfg: LlmConfig) -> str:
    """The Ollama server URL: cfg.ollama_host, else OLLAMA_HOST, else the default; scheme and port filled in."""
    host = (cfg.ollama_host or os.environ.get("OLLAMA_HOST") or DEFAULT_OLLAMA_HOST).strip().rstrip("/")
    if "://" not in host:                              # OLLAMA_HOST is often "0.0.0.0:11434" or "localhost"
        host = "http://" + host
    scheme, rest = host.split("://", 1)
    if ":" not in rest.split("/", 1)[0].rsplit("]", 1)[-1]:
        netloc, _, path = rest.partition("/")
        rest = f"{netloc}:{11434 if scheme == 'http' else 443}" + (f"/{path}" if path else "")
    url = f"{scheme}://{rest}"
    where = "feedback.llm.ollama_host" if cfg.ollama_host else "OLLAMA_HOST"
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port                                     # noqa: B018  # raises for a port outside 0-65535
    except ValueError as exc:
        raise LlmSetupError(f"{where} = {url!r} is not an address ({exc}); give one like "
                            f"{DEFAULT_OLLAMA_HOST}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
        raise LlmSetupError(f"{where} = {url!r} is not an http(s) address; give one like {DEFAULT_OLLAMA_HOST}")
    return url
