"""Language-model backends for persona feedback: LangChain chat models behind `FeedbackBackend`.

Two ways to reach a model:
- embedded (default): a small instruction-tuned GGUF model served in-process by
  llama.cpp (xllamacpp) on 127.0.0.1, reached through its OpenAI-compatible
  endpoint with `ChatOpenAI`. The model file comes from PyPI packages that are
  data, never code: they are located through their metadata, never imported,
  and the file is verified by sha256 before it is loaded. Answers are held to
  the answer's JSON schema by grammar-constrained decoding, and the token
  probabilities of the rating digit give an expected rating. llama.cpp's prompt
  cache (`prompt_cache`) keeps the persona's instructions and examples, which
  come first in every request, so a persona's later answers read only the
  delivery; it can move an expected rating in its second or third decimal
  (a cached prefix was computed in another batch), so exact repeats need it
  off or the answer cache.
- ollama: `ChatOllama` against a running Ollama server (`OLLAMA_HOST`, default
  http://127.0.0.1:11434), with Ollama's JSON-schema structured output; no
  token probabilities are asked for, so only the stated rating is known.

`build_backends` starts one backend per model instance and returns a function
that shuts them down; with `lazy`, an embedded instance loads its model when it is
first asked (a run answered from the cache never loads one).

One module per part: `files` (the model files), `embedded` (the llama.cpp server),
`ollama` (an Ollama server), `chat` (`LangChainFeedback`, the backend on any chat model).

What goes wrong with a backend is never raised into the simulation: a server that
cannot be reached, times out (`timeout_s` limits the whole answer) or answers with an
error status gives a failed answer, after a few tries where trying again may help; an
answer that is not the JSON object asked for, or a response body that is not the API's
at all, is asked again and then counted invalid. Errors that come from our own code
(a TypeError, say) still propagate.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from agents.feedback import Delivery, Feedback, FeedbackBackend
from agents.persona import Persona
from world.llm.chat import BACKOFF_BASE_S, CONNECT_TRIES, LangChainFeedback
from world.llm.embedded import EmbeddedServer, embedded_chat
from world.llm.files import EMBEDDED_MODELS, SETUP_MODELS, ModelFiles, model_file
from world.llm.ollama import OLLAMA_PROBE_TIMEOUT_S, check_ollama, ollama_chat, ollama_host
from world.llm_config import DEFAULT_OLLAMA_HOST, SAMPLING_SEED, LlmConfig, LlmSetupError

__all__ = ["BACKOFF_BASE_S", "CONNECT_TRIES", "DEFAULT_OLLAMA_HOST", "EMBEDDED_MODELS", "OLLAMA_PROBE_TIMEOUT_S",
           "SAMPLING_SEED", "SETUP_MODELS", "EmbeddedServer", "LangChainFeedback", "LlmConfig", "LlmSetupError",
           "ModelFiles", "StartedOnFirstCall", "build_backends", "check_ollama", "embedded_chat", "model_file", "ollama_chat", "ollama_host"]




class StartedOnFirstCall:
    """An embedded model instance whose llama.cpp server starts when it is first asked; implements
    `FeedbackBackend`. Loading the 1.5B takes about 5 s and 2 GB per instance, which a run answered from the
    response cache does without. A server that cannot start raises `LlmSetupError` from that first call.
    """

    def __init__(self, path: Path, cfg: LlmConfig) -> None:
        self.name = f"embedded:{cfg.model}"
        self._path, self._cfg = path, cfg
        self._server: EmbeddedServer | None = None
        self._backend: LangChainFeedback | None = None
        self._lock = threading.Lock()

    def give_feedback(self, persona: Persona, delivery: Delivery) -> Feedback:
        with self._lock:
            if self._backend is None:
                self._server = EmbeddedServer(self._path, self._cfg.model, self._cfg)
                self._backend = embedded_backend(self._server, self._cfg)
            backend = self._backend
        return backend.give_feedback(persona, delivery)

    @property
    def started(self) -> bool:
        return self._server is not None

    def close(self) -> None:
        with self._lock:
            if self._server is not None:
                self._server.close()
            self._server = self._backend = None


def embedded_backend(server: EmbeddedServer, cfg: LlmConfig) -> LangChainFeedback:
    """The feedback backend on one embedded server."""
    return LangChainFeedback(embedded_chat(server, cfg), f"embedded:{cfg.model}", logprobs=cfg.top_logprobs > 0,
                             max_retries=cfg.max_retries)


def build_backends(cfg: LlmConfig, instances: int, lazy: bool = False,
                   ) -> tuple[list[FeedbackBackend], Callable[[], None]]:
    """One feedback backend per model instance, and a function that shuts them all down.

    Embedded: the model file is verified (sha256) before any instance loads it, and each
    instance is its own llama.cpp server; with `lazy`, started on its first call (`StartedOnFirstCall`). Ollama: the server is checked first; the instances
    are clients of the one server, which decides how many requests it runs at once.

    Raises:
        LlmSetupError: the model or the server is not there; the message says what to do.
    """
    if instances < 1:
        raise ValueError(f"instances must be >= 1, got {instances}")
    if cfg.backend == "ollama":
        host = ollama_host(cfg)
        check_ollama(host, cfg.ollama_model)
        backends: list[FeedbackBackend] = [
            LangChainFeedback(ollama_chat(host, cfg), f"ollama:{cfg.ollama_model}", logprobs=False,
                              max_retries=cfg.max_retries) for _ in range(instances)]
        return backends, lambda: None

    path = model_file(cfg.model, cfg.cache_dir)
    if lazy:
        lazies = [StartedOnFirstCall(path, cfg) for _ in range(instances)]

        def close_started() -> None:
            for backend in lazies:
                backend.close()

        return list(lazies), close_started
    servers: list[EmbeddedServer] = []
    try:
        for _ in range(instances):
            servers.append(EmbeddedServer(path, cfg.model, cfg))
    except BaseException:
        for server in servers:
            server.close()
        raise
    backends: list[FeedbackBackend] = [embedded_backend(server, cfg) for server in servers]

    def close() -> None:
        for server in servers:
            server.close()

    return backends, close
