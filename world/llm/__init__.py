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
that shuts them down.

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

from collections.abc import Callable

from agents.feedback import FeedbackBackend
from world.llm.chat import BACKOFF_BASE_S, CONNECT_TRIES, LangChainFeedback
from world.llm.embedded import EmbeddedServer, embedded_chat
from world.llm.files import EMBEDDED_MODELS, SETUP_MODELS, ModelFiles, model_file
from world.llm.ollama import OLLAMA_PROBE_TIMEOUT_S, check_ollama, ollama_chat, ollama_host
from world.llm_config import DEFAULT_OLLAMA_HOST, SAMPLING_SEED, LlmConfig, LlmSetupError

__all__ = ["BACKOFF_BASE_S", "CONNECT_TRIES", "DEFAULT_OLLAMA_HOST", "EMBEDDED_MODELS", "OLLAMA_PROBE_TIMEOUT_S",
           "SAMPLING_SEED", "SETUP_MODELS", "EmbeddedServer", "LangChainFeedback", "LlmConfig", "LlmSetupError",
           "ModelFiles", "build_backends", "check_ollama", "embedded_chat", "model_file", "ollama_chat", "ollama_host"]




def build_backends(cfg: LlmConfig, instances: int) -> tuple[list[FeedbackBackend], Callable[[], None]]:
    """One feedback backend per model instance, and a function that shuts them all down.

    Embedded: the model file is verified (sha256) before any instance loads it, and each
    instance is its own llama.cpp server. Ollama: the server is checked first; the instances
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
    servers: list[EmbeddedServer] = []
    try:
        for _ in range(instances):
            servers.append(EmbeddedServer(path, cfg.model, cfg))
    except BaseException:
        for server in servers:
            server.close()
        raise
    backends = [LangChainFeedback(embedded_chat(server, cfg), f"embedded:{cfg.model}",
                                  logprobs=cfg.top_logprobs > 0, max_retries=cfg.max_retries) for server in servers]

    def close() -> None:
        for server in servers:
            server.close()

    return backends, close
