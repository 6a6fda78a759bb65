"""`LangChainFeedback`: a persona's answer from any LangChain chat model, with retries and clear failures."""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx
import openai
from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable

from agents.answer import InvalidAnswer, expected_rating, parse_answer
from agents.feedback import Delivery, Feedback, feedback_messages
from agents.persona import Persona
from world.llm.ollama import ResponseError

CONNECT_TRIES = 3             # attempts to reach the backend before an answer counts as failed
BACKOFF_BASE_S = 0.5          # wait before the 2nd attempt, s; doubles after each failure


def _status(exc: BaseException) -> int | None:
    """The HTTP status of an error the server answered with (-1: an error inside a started answer); else None."""
    if isinstance(exc, (openai.APIStatusError, ResponseError)):
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
