"""An Ollama server: where it is, whether it serves the model, and a LangChain chat model for it."""

from __future__ import annotations

import os

import httpx

# The ollama package builds a default client from OLLAMA_HOST when it is imported, and a malformed value
# ("http://[x", a port over 65535) would crash every command before it could say what is wrong. The
# variable is read, and checked, when an Ollama backend is built (`ollama_host`).
_OLLAMA_HOST = os.environ.pop("OLLAMA_HOST", None)
try:
    from langchain_ollama import ChatOllama
    from ollama import ResponseError
finally:
    if _OLLAMA_HOST is not None:
        os.environ["OLLAMA_HOST"] = _OLLAMA_HOST

from agents.answer import ANSWER_SCHEMA
from world.llm.embedded import DeadlineTransport
from world.llm_config import SAMPLING_SEED, LlmConfig, LlmSetupError, ollama_host

__all__ = ["ChatOllama", "ResponseError", "check_ollama", "ollama_chat", "ollama_host"]

OLLAMA_PROBE_TIMEOUT_S = 3.0  # how long build_backends waits for an Ollama server to answer, s


def check_ollama(host: str, model: str) -> None:
    """Fail early and clearly when no Ollama server answers at host or it lacks the model.

    Raises:
        LlmSetupError: what is wrong and what to do.
    """
    try:
        response = httpx.get(f"{host}/api/tags", timeout=OLLAMA_PROBE_TIMEOUT_S)
    except httpx.HTTPError as exc:
        raise LlmSetupError(
            f"no Ollama server answers at {host} ({type(exc).__name__}): start it with `ollama serve` and pull "
            f"the model with `ollama pull {model}`, or set feedback.llm.backend: embedded") from None
    if response.status_code != 200:
        raise LlmSetupError(f"the server at {host} answered GET /api/tags with HTTP {response.status_code}; "
                            "is it an Ollama server? Set feedback.llm.ollama_host or OLLAMA_HOST to one")
    try:
        names = {m.get("name") or m.get("model") for m in response.json().get("models", [])}
    except (ValueError, AttributeError, TypeError):
        raise LlmSetupError(f"the server at {host} answered GET /api/tags with something that is not Ollama's "
                            "model list; set feedback.llm.ollama_host or OLLAMA_HOST to an Ollama server") from None
    wanted = {model} if ":" in model else {model, f"{model}:latest"}
    if not names & wanted:
        raise LlmSetupError(
            f"the Ollama server at {host} does not have the model {model!r} (it has: "
            f"{', '.join(sorted(n for n in names if n)) or 'none'}): pull it with `ollama pull {model}`, "
            "or set feedback.llm.ollama_model to one it has")


def ollama_chat(host: str, cfg: LlmConfig) -> ChatOllama:
    """ChatOllama held to ANSWER_SCHEMA by Ollama's structured output."""
    return ChatOllama(
        model=cfg.ollama_model,
        base_url=host,
        temperature=cfg.temperature,
        format=ANSWER_SCHEMA,
        num_predict=cfg.max_tokens,
        num_ctx=cfg.context_tokens,
        seed=SAMPLING_SEED,
        client_kwargs={"timeout": cfg.timeout_s},
        sync_client_kwargs={"transport": DeadlineTransport(cfg.timeout_s)},   # streamed: see DeadlineTransport
    )
