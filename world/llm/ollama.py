"""An Ollama server: where it is, whether it serves the model, and a LangChain chat model for it."""

from __future__ import annotations

import os
import urllib.parse

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
from world.llm_config import DEFAULT_OLLAMA_HOST, SAMPLING_SEED, LlmConfig, LlmSetupError

__all__ = ["ChatOllama", "ResponseError", "check_ollama", "ollama_chat", "ollama_host"]

OLLAMA_PROBE_TIMEOUT_S = 3.0  # how long build_backends waits for an Ollama server to answer, s


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
