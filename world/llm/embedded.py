"""llama.cpp's server in this process (xllamacpp), and a LangChain chat model that talks to it."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import xllamacpp
from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable
from langchain_openai import ChatOpenAI

from agents.answer import ANSWER_SCHEMA
from world.llm_config import SAMPLING_SEED, LlmConfig, LlmSetupError


class EmbeddedServer:
    """llama.cpp's HTTP server in this process, on 127.0.0.1 at a free port, one model instance.

    Attributes:
        alias: the model name the server answers to.
        base_url: e.g. "http://127.0.0.1:40123" (no "/v1").
        api_key: the random key every HTTP request must carry.
    """

    def __init__(self, model_path: Path, alias: str, cfg: LlmConfig) -> None:
        """Load the model (synchronously) and start serving.

        Args:
            model_path: a GGUF file, already verified (see `model_file`).
            alias: the model name requests use.
            cfg: threads, context and answer length.

        Raises:
            LlmSetupError: the file is missing or llama.cpp cannot start.
        """
        model_path = Path(model_path)
        # xllamacpp raises one bare RuntimeError for every start failure, so check what can be checked first
        if not model_path.is_file():
            raise LlmSetupError(f"the model file {model_path} does not exist; get it with `model_file(...)`")
        params = xllamacpp.CommonParams()
        params.model.path = str(model_path)
        params.model_alias = {alias}
        params.n_ctx = cfg.context_tokens
        params.n_parallel = 1
        params.n_predict = cfg.max_tokens        # server-side cap on generated tokens
        params.cpuparams.n_threads = cfg.threads
        params.cpuparams_batch.n_threads = cfg.threads
        params.n_threads_http = 2
        params.hostnames = ["127.0.0.1"]
        params.port = 0                          # the OS picks a free port
        params.verbosity = 0                     # llama.cpp stays silent on stderr
        self.api_key = secrets.token_urlsafe(24)
        params.api_keys = [self.api_key]
        try:
            self._server: xllamacpp.Server | None = xllamacpp.Server(params)
        except RuntimeError as exc:
            raise LlmSetupError(
                f"llama.cpp could not start the model {model_path} ({exc}); the file may not be a GGUF model "
                f"or may need more memory than is free (context {cfg.context_tokens} tokens)") from None
        self.alias = alias
        self.base_url: str = self._server.listening_address

    def chat_completion(self, request: dict[str, Any]) -> dict[str, Any]:
        """One OpenAI-style chat completion, in process (no HTTP, no key)."""
        if self._server is None:
            raise RuntimeError("the embedded server is closed")
        return self._server.handle_chat_completions(request)

    def close(self) -> None:
        """Stop serving and free the model (dropping the last reference shuts the server down)."""
        self._server = None


class DeadlineTransport(httpx.BaseTransport):
    """HTTP that gives up on a request, answer included, once `total_s` have passed.

    httpx's own timeouts limit each phase (connecting, one read), so a server that sends its
    answer a little at a time, as Ollama streams tokens, never times out however slow it is.
    The deadline is checked as each part of the answer arrives: a request ends after at most
    total_s plus one read (which httpx limits to total_s as well).
    """

    def __init__(self, total_s: float) -> None:
        self.total_s = total_s
        self._transport = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        deadline = time.monotonic() + self.total_s
        response = self._transport.handle_request(request)
        response.stream = DeadlineStream(response.stream, deadline, self.total_s, request)
        return response

    def close(self) -> None:
        self._transport.close()


class DeadlineStream(httpx.SyncByteStream):
    def __init__(self, stream: httpx.SyncByteStream, deadline: float, total_s: float,
                 request: httpx.Request) -> None:
        self._stream, self._deadline, self._total_s, self._request = stream, deadline, total_s, request

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._stream:
            if time.monotonic() > self._deadline:
                raise httpx.ReadTimeout(f"no whole answer within {self._total_s:g} s (feedback.llm.timeout_s)",
                                        request=self._request)
            yield chunk

    def close(self) -> None:
        self._stream.close()


def embedded_chat(server: EmbeddedServer, cfg: LlmConfig) -> Runnable[LanguageModelInput, BaseMessage]:
    """ChatOpenAI against an embedded server, held to ANSWER_SCHEMA by constrained decoding."""
    chat = ChatOpenAI(
        base_url=server.base_url + "/v1",
        api_key=server.api_key,
        model=server.alias,
        temperature=cfg.temperature,
        max_tokens=cfg.max_tokens,
        logprobs=cfg.top_logprobs > 0,
        top_logprobs=cfg.top_logprobs or None,
        timeout=cfg.timeout_s,
        http_client=httpx.Client(transport=DeadlineTransport(cfg.timeout_s)),
        http_socket_options=(),   # no keep-alive tuning for a local server (and no warning that it shadows proxies)
        max_retries=0,    # retries are ours (LangChainFeedback), so that failures are counted
        # the persona's fixed part comes first in every request (feedback_messages), so the cache holds it
        extra_body={"cache_prompt": cfg.prompt_cache, "seed": SAMPLING_SEED},
    )
    return chat.bind(response_format={
        "type": "json_schema",
        "json_schema": {"name": ANSWER_SCHEMA["title"], "schema": ANSWER_SCHEMA, "strict": True},
    })
