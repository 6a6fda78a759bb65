"""Test support: a small Ollama-API-compatible HTTP server backed by the embedded llama.cpp model.

It lets the tests drive the real `ChatOllama` -> ollama client -> HTTP path without an
Ollama installation. It speaks the part of Ollama's API that langchain-ollama 1.1.0 and
ollama 0.6.3 use: GET /api/tags, GET /api/version, POST /api/show and POST /api/chat,
non-streaming (one JSON object) and streaming (NDJSON: content chunks, then a final
chunk with done=true; ChatOllama always streams, even for `invoke`). Ollama's `format`
(a JSON schema or "json") becomes llama.cpp's `response_format`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.world.json_handler import JsonHandler

OPTION_TO_OPENAI = {"num_predict": "max_tokens", "temperature": "temperature", "seed": "seed",
                    "top_p": "top_p", "top_k": "top_k", "stop": "stop"}


class OllamaCompatServer:
    """An Ollama-like server on 127.0.0.1 at a free port, answering with an in-process chat completion.

    Attributes:
        host: e.g. "http://127.0.0.1:40123".
        requests: the /api/chat request bodies received, in order (for assertions).
    """

    def __init__(self, complete: Callable[[dict[str, Any]], dict[str, Any]], model: str) -> None:
        """Start serving.

        Args:
            complete: one OpenAI-style chat completion, dict in, dict out (`EmbeddedServer.chat_completion`).
            model: the one model name this server lists and accepts.
        """
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self._complete = complete
        self._lock = threading.Lock()          # one model instance: one completion at a time
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self.host = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="ollama-compat", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop serving and free the port."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def chat(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Answer one /api/chat body: (HTTP status, Ollama's final response object)."""
        self.requests.append(body)
        if body.get("model") not in (self.model, f"{self.model}:latest"):
            return 404, {"error": f"model '{body.get('model')}' not found"}
        request: dict[str, Any] = {
            "messages": [{"role": m["role"], "content": m.get("content") or ""} for m in body.get("messages", [])],
            "cache_prompt": True,            # Ollama reuses the common prefix of the previous request too
        }
        for option, value in (body.get("options") or {}).items():
            if option in OPTION_TO_OPENAI and value is not None:
                request[OPTION_TO_OPENAI[option]] = value
        fmt = body.get("format")
        if fmt == "json":
            request["response_format"] = {"type": "json_object"}
        elif isinstance(fmt, dict):
            request["response_format"] = {"type": "json_schema", "json_schema": {"name": "answer", "schema": fmt}}
        start = time.perf_counter_ns()
        with self._lock:
            result = self._complete(request)
        if not result.get("choices"):
            return 500, {"error": f"completion failed: {json.dumps(result)[:500]}"}
        choice, usage = result["choices"][0], result.get("usage") or {}
        return 200, {
            "model": body["model"],
            "created_at": datetime.now(UTC).isoformat(),
            "message": {"role": "assistant", "content": choice["message"].get("content") or ""},
            "done": True,
            "done_reason": "length" if choice.get("finish_reason") == "length" else "stop",
            "total_duration": time.perf_counter_ns() - start,
            "prompt_eval_count": usage.get("prompt_tokens", 0),
            "eval_count": usage.get("completion_tokens", 0),
        }

    def tags(self) -> dict[str, Any]:
        """Ollama's model list, with the one model."""
        return {"models": [{"name": self.model, "model": self.model, "modified_at": datetime.now(UTC).isoformat(),
                            "size": 0, "digest": "0" * 64,
                            "details": {"format": "gguf", "family": "qwen2", "parameter_size": "0.5B",
                                        "quantization_level": "Q4_K_M"}}]}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(JsonHandler):
            def _body(self) -> dict[str, Any]:
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length) or b"{}")

            def do_GET(self) -> None:
                if self.path == "/api/tags":
                    self._send_json(200, server.tags())
                elif self.path == "/api/version":
                    self._send_json(200, {"version": "0.0.0-compat"})
                elif self.path == "/":
                    self._send(200, b"Ollama is running", "text/plain")
                else:
                    self._send_json(404, {"error": f"unknown path {self.path}"})

            def do_HEAD(self) -> None:
                self._send(200 if self.path == "/" else 404, b"", "text/plain")

            def do_POST(self) -> None:
                try:
                    body = self._body()
                except json.JSONDecodeError as exc:
                    self._send_json(400, {"error": f"invalid JSON: {exc}"})
                    return
                if self.path == "/api/show":
                    if body.get("model") not in (server.model, f"{server.model}:latest"):
                        self._send_json(404, {"error": f"model '{body.get('model')}' not found"})
                        return
                    self._send_json(200, {"modelfile": "", "parameters": "", "template": "",
                                          "details": server.tags()["models"][0]["details"],
                                          "model_info": {}, "capabilities": ["completion"]})
                    return
                if self.path != "/api/chat":
                    self._send_json(404, {"error": f"unknown path {self.path}"})
                    return
                status, final = server.chat(body)
                if status != 200 or body.get("stream") is False:
                    self._send_json(status, final)
                    return
                # streaming: Ollama sends content chunks, then an empty final chunk carrying done=true
                content = {k: final[k] for k in ("model", "created_at")} | {"message": final["message"], "done": False}
                last = final | {"message": {"role": "assistant", "content": ""}}
                lines = json.dumps(content) + "\n" + json.dumps(last) + "\n"
                self._send(200, lines.encode(), "application/x-ndjson")

        return Handler
