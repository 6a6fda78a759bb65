"""Test support: the part of an HTTP request handler that the loopback test servers share."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any


class JsonHandler(BaseHTTPRequestHandler):
    """Quiet, with helpers to answer with bytes or a JSON value."""

    def log_message(self, format: str, *args: Any) -> None:   # keep test output clean
        pass

    def _send(self, status: int, payload: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _send_json(self, status: int, obj: object) -> None:
        self._send(status, json.dumps(obj).encode())
