"""Test support: a loopback language-model server that answers well until told to fail.

It speaks the part of Ollama's API that `check_ollama` and `ChatOllama` use (GET /api/tags,
GET /api/version, POST /api/show, POST /api/chat streaming NDJSON or one JSON object) and the
OpenAI chat-completions endpoint that `ChatOpenAI` uses (POST /v1/chat/completions), and
answers every chat with one canned valid persona answer. At any time, or after a number of
further chats (a backend that dies mid-run), it can be switched to a fault:

    stop   the server stops listening: the chat that trips it is dropped without an answer
           and every later connection is refused; `recover()` listens again on the same port
    stall  the chat gets no answer for `stall_s` seconds (longer than any client timeout);
           `stall="headers"` sends the status line and headers, then nothing; `stall="trickle"`
           sends the answer a little at a time (a token or a space every TRICKLE_S), never done
    junk   HTTP 200 with something that is not a valid answer (see JUNK)
    error  HTTP 500 (or another `status`); status 200: the error comes in the body after a good start
           (Ollama: an {"error": ...} line in the stream, as when its model runner dies; OpenAI: an
           {"error": ...} object)

Only chats trip and suffer faults; the model list and the version always answer, except
while the server is stopped.
"""

from __future__ import annotations

import json
import socket
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from tests.world.json_handler import JsonHandler

TRICKLE_S = 0.05           # a trickling answer sends a piece this often, s
VALID_ANSWER = '{"feedback": "Sharp and just what I asked for.", "rating": 4}'

Mode = Literal["ok", "stop", "stall", "junk", "error"]
Stall = Literal["before", "headers", "trickle"]
# what "junk" answers: the answer's text inside a well-formed response, or a response that breaks the protocol
JUNK = {
    "text": "content is prose, not JSON",
    "fields": "content is JSON with the wrong fields",
    "empty": "content is empty",
    "protocol": "the body is not JSON (Ollama: a line of the NDJSON stream; OpenAI: the whole body)",
    "shape": "the body is JSON of the wrong shape (Ollama: an array line; OpenAI: an object without choices)",
    "html": "the body is an HTML page (text/html)",
    "nothing": "the body is empty",
}
JUNK_CONTENT = {"text": "I would give it four stars, it looks nice!", "fields": '{"score": 4, "comment": "nice"}',
                "empty": ""}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass     # a client that timed out and hung up is what these tests cause on purpose


def _shutdown(httpd: _Server | None, thread: threading.Thread | None) -> None:
    """Stop a listener and close its socket: from now on connections to its port are refused."""
    if httpd is not None:
        httpd.shutdown()
        httpd.server_close()
    if thread is not None:
        thread.join(timeout=5)


class FaultServer:
    """An Ollama- and OpenAI-compatible chat server on 127.0.0.1 at a free port, with switchable faults.

    Attributes:
        model: the one model name it lists.
        host: e.g. "http://127.0.0.1:40123" (Ollama's base URL; ChatOpenAI's is host + "/v1").
        answer: what every good chat answers.
        stall_s: how long a stalled chat waits before it answers anyway, s.
        chats: chat requests received (both APIs), counting those that a fault met.
        faulted: chat requests that a fault met.
        paths: every request received, as "METHOD /path".
    """

    def __init__(self, model: str = "qwen2.5:3b", answer: str = VALID_ANSWER, stall_s: float = 30.0) -> None:
        self.model = model
        self.answer = answer
        self.stall_s = stall_s
        self.chats = 0
        self.faulted = 0
        self.paths: list[str] = []
        self._mode: Mode = "ok"
        self._next: tuple[Mode, str, str, int] | None = None   # the fault to switch to, its junk, stall, status
        self._trip_at: int | None = None                   # chats count at which the next fault starts
        self._junk = "text"
        self._stall = "before"
        self._status = 500
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self._listen()
        self.host = f"http://127.0.0.1:{self.port}"

    # --- control --------------------------------------------------------------------------------

    @property
    def mode(self) -> Mode:
        return self._mode

    def fail(self, mode: Mode, after: int = 0, junk: str = "text", stall: Stall = "before", status: int = 500,
             ) -> None:
        """Switch to a fault now, or once `after` more chats have been answered well.

        Args:
            mode: the fault (see the module docstring).
            after: chats still answered well before the fault starts, count.
            junk: which junk (a key of JUNK), mode "junk" only.
            stall: "before": nothing is sent; "headers": status and headers, then nothing; "trickle": the
                answer a piece at a time, never finished.
            status: the HTTP status of mode "error".
        """
        if mode not in ("stop", "stall", "junk", "error"):
            raise ValueError(f"unknown fault {mode!r}")
        if junk not in JUNK:
            raise ValueError(f"unknown junk {junk!r}; known: {', '.join(JUNK)}")
        with self._lock:
            if after > 0:
                self._next, self._trip_at = (mode, junk, stall, status), self.chats + after
                return
            self._next = self._trip_at = None
            self._junk, self._stall, self._status = junk, stall, status
        self._switch(mode)

    def recover(self) -> None:
        """Answer well again (listening again on the same port after a stop)."""
        with self._lock:
            self._next = self._trip_at = None
        self._switch("ok")

    def close(self) -> None:
        """Stop serving, wake stalled handlers and free the port."""
        self._closed.set()
        self._stop_listening()

    # --- internals ------------------------------------------------------------------------------

    def _switch(self, mode: Mode) -> None:
        was, self._mode = self._mode, mode
        if mode == "stop" and was != "stop":
            self._stop_listening()
        elif mode != "stop" and was == "stop":
            self._listen()

    def _listen(self) -> None:
        self._httpd = _Server(("127.0.0.1", self.port), self._handler_class())
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"fault-server-{self.port}", daemon=True)
        self._thread.start()

    def _stop_listening(self) -> None:
        _shutdown(*self._detach())

    def _detach(self) -> tuple[_Server | None, threading.Thread | None]:
        detached, self._httpd, self._thread = (self._httpd, self._thread), None, None
        return detached

    def _chat_mode(self) -> tuple[Mode, str, str, int]:
        """Count a chat and say how to answer it (tripping a pending fault when its time has come)."""
        with self._lock:
            self.chats += 1
            if self._next is not None and self._trip_at is not None and self.chats > self._trip_at:
                mode, self._junk, self._stall, self._status = self._next
                self._next = self._trip_at = None
                self._mode = mode
                if mode == "stop":     # shutdown() waits for serve_forever, so not from this handler's thread
                    threading.Thread(target=_shutdown, args=self._detach(), daemon=True).start()
            if self._mode != "ok":
                self.faulted += 1
            return self._mode, self._junk, self._stall, self._status

    def tags(self) -> dict[str, Any]:
        return {"models": [{"name": self.model, "model": self.model, "modified_at": datetime.now(UTC).isoformat(),
                            "size": 0, "digest": "0" * 64, "details": {"format": "gguf", "family": "qwen2"}}]}

    def _ollama_final(self, model: str, content: str) -> dict[str, Any]:
        return {"model": model, "created_at": datetime.now(UTC).isoformat(),
                "message": {"role": "assistant", "content": content}, "done": True, "done_reason": "stop",
                "total_duration": 1000, "prompt_eval_count": 10, "eval_count": 5}

    def _openai_completion(self, model: str, content: str) -> dict[str, Any]:
        return {"id": "chatcmpl-fault", "object": "chat.completion", "created": 0, "model": model,
                "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                             "message": {"role": "assistant", "content": content}}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(JsonHandler):
            def _body(self) -> dict[str, Any]:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except json.JSONDecodeError:
                    return {}
                return body if isinstance(body, dict) else {}

            def do_GET(self) -> None:
                server.paths.append(f"GET {self.path}")
                if self.path == "/api/tags":
                    self._send_json(200, server.tags())
                elif self.path == "/api/version":
                    self._send_json(200, {"version": "0.0.0-fault"})
                elif self.path == "/":
                    self._send(200, b"Ollama is running", "text/plain")
                else:
                    self._send_json(404, {"error": f"unknown path {self.path}"})

            def do_POST(self) -> None:
                server.paths.append(f"POST {self.path}")
                body = self._body()
                if self.path == "/api/show":
                    self._send_json(200, {"modelfile": "", "parameters": "", "template": "",
                                          "details": server.tags()["models"][0]["details"], "model_info": {},
                                          "capabilities": ["completion"]})
                elif self.path in ("/api/chat", "/v1/chat/completions"):
                    self._chat(body)
                else:
                    self._send_json(404, {"error": f"unknown path {self.path}"})

            def _chat(self, body: dict[str, Any]) -> None:
                mode, junk, stall, status = server._chat_mode()
                ollama = self.path == "/api/chat"
                model = str(body.get("model") or server.model)
                if mode == "stop":               # the server died while this chat was on its way
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if mode == "error" and status == 200 and ollama:
                    first = {"model": model, "created_at": datetime.now(UTC).isoformat(),
                             "message": {"role": "assistant", "content": '{"feedback": "Sh'}, "done": False}
                    error = {"error": "llama runner process has terminated: exit status 2 (injected)"}
                    self._send(200, (json.dumps(first) + "\n" + json.dumps(error) + "\n").encode(),
                               "application/x-ndjson")
                    return
                if mode == "error":
                    self._send_json(status, {"error": {"message": f"injected error {status}", "type": "server_error"}}
                                    if not ollama else {"error": f"injected error {status}"})
                    return
                if mode == "stall":
                    self._stall(stall, ollama, model)
                    return
                content = server.answer if mode == "ok" else JUNK_CONTENT.get(junk, "")
                if mode == "junk" and junk == "protocol":
                    self._send(200, b'{"message": {"role": "assistant", "content": "4 st\n' if ollama
                               else b'{"id": "chatcmpl-fault", "choices": [{"mess')
                elif mode == "junk" and junk == "shape":
                    self._send(200, b'["rating", 4]\n' if ollama else b'{"unexpected": true}',
                               "application/x-ndjson" if ollama else "application/json")
                elif mode == "junk" and junk == "nothing":
                    self._send(200, b"", "application/x-ndjson" if ollama else "application/json")
                elif mode == "junk" and junk == "html":
                    self._send(200, b"<html><body><h1>Welcome to nginx!</h1></body></html>", "text/html")
                elif ollama and body.get("stream") is False:
                    self._send_json(200, server._ollama_final(model, content))
                elif ollama:
                    # streaming: content chunks, then an empty final chunk carrying done=true
                    final = server._ollama_final(model, content)
                    chunk = {k: final[k] for k in ("model", "created_at")} | {"message": final["message"],
                                                                                "done": False}
                    last = final | {"message": {"role": "assistant", "content": ""}}
                    self._send(200, (json.dumps(chunk) + "\n" + json.dumps(last) + "\n").encode(),
                               "application/x-ndjson")
                else:
                    self._send_json(200, server._openai_completion(model, content))

            def _stall(self, stall: str, ollama: bool, model: str) -> None:
                self.close_connection = True
                if stall == "before":
                    server._closed.wait(server.stall_s)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/x-ndjson" if ollama else "application/json")
                self.send_header("Content-Length", str(1 << 30))
                self.end_headers()
                self.wfile.flush()
                if stall == "headers":
                    server._closed.wait(server.stall_s)
                    return
                # a token (Ollama) or a space before the JSON body (OpenAI) every TRICKLE_S: never a read timeout
                piece = (json.dumps({"model": model, "created_at": datetime.now(UTC).isoformat(),
                                     "message": {"role": "assistant", "content": "a"}, "done": False}) + "\n"
                         if ollama else " ").encode()
                waited = 0.0
                while waited < server.stall_s and not server._closed.wait(TRICKLE_S):
                    waited += TRICKLE_S
                    self.wfile.write(piece)
                    self.wfile.flush()

        return Handler
