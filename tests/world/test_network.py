"""The program talks to nothing but 127.0.0.1 (and a configured Ollama host), fetches nothing from a
model hub, never asks the model an answer its cache holds, and never executes prompts or feedback or uses them
as file paths."""

from __future__ import annotations

import csv
import ipaddress
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import scenarios.assemble as assemble_module
from agents.feedback import Delivery, Feedback
from agents.persona import Persona
from scenarios.run import run_scenario
from tests.shipped import HANG_S, ROOT, shipped
from tests.world.scripted import ScriptedBackend

HOSTILE_PROMPTS = ("$(touch pwned-subshell)", "`touch pwned-backtick`", "../../../pwned-path",
                   "{__import__('os').system('touch pwned-eval')}", "x; rm -rf pwned-dir && echo pwned")
HOSTILE_FEEDBACK = "Nice. $(touch pwned-feedback) ../../pwned-feedback-path {__import__('os').getcwd()}"


def test_importing_the_project_switches_the_libraries_offline() -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0", "LANGSMITH_TRACING": "true",
           "LANGCHAIN_TRACING_V2": "true", "OPENAI_PROXY": "http://proxy.invalid:9", "NO_PROXY": "example.org"}
    code = ("import os, scenarios.run, huggingface_hub.constants as c; "
            "print(c.HF_HUB_OFFLINE, c.HF_HUB_DISABLE_TELEMETRY, os.environ['LANGSMITH_TRACING'], "
            "os.environ['LANGCHAIN_TRACING_V2'], 'OPENAI_PROXY' in os.environ, os.environ['NO_PROXY'])")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True", "false", "false", "False", "example.org,127.0.0.1,localhost,::1"]


class Guard:
    """Records every address the process connects to or looks up."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.connected: list[Any] = []
        self.looked_up: list[str] = []
        connect, connect_ex, getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

        def guarded_connect(sock: socket.socket, address: Any) -> Any:
            self.connected.append(address)
            return connect(sock, address)

        def guarded_connect_ex(sock: socket.socket, address: Any) -> Any:
            self.connected.append(address)
            return connect_ex(sock, address)

        def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
            self.looked_up.append(str(host))
            return getaddrinfo(host, *args, **kwargs)

        monkeypatch.setattr(socket.socket, "connect", guarded_connect)
        monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
        monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)

    def outside(self) -> list[str]:
        """Addresses that are not this machine."""
        far = []
        for address in self.connected:
            host = address[0] if isinstance(address, tuple) else None
            if host is not None and not ipaddress.ip_address(host).is_loopback:
                far.append(str(address))
        return far + [h for h in self.looked_up if h not in ("127.0.0.1", "localhost", "::1")]


@pytest.mark.llm
def test_a_live_run_talks_only_to_this_machine_and_its_rerun_comes_from_the_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a proxy in the environment must not see the prompts sent to the embedded model
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:9")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:9")
    monkeypatch.setenv("ALL_PROXY", "http://proxy.invalid:9")
    guard = Guard(monkeypatch)
    cfg = shipped({"feedback": {"mode": "live", "cache": str(tmp_path / "feedback.sqlite"), "think_s": [0.5, 1.0],
                                # the fast model: about the network; a bound on a hang, not on speed (an
                                # answer that a busy machine slows past it would be failed and not cached)
                                "llm": {"model": "qwen2.5-coder-0.5b", "timeout_s": HANG_S}},
                   "imagegen": {"render": "real"}, "users": {"count": 6, "request_rate_per_s": 0.1}})
    first = run_scenario(cfg, steps=20, seed=3, out=tmp_path / "a", log=lambda line: None)
    assert first.llm_calls > 0 and first.requests_rated > first.feedback_failed
    assert guard.connected, "the LLM client reached the embedded server over the loopback"
    # the same run again: every answer comes from the cache, the model is never asked
    second = run_scenario(cfg, steps=20, seed=3, out=tmp_path / "b", log=lambda line: None)
    # calls still running when the last slot ends finish (and are cached) as the run closes
    assert second.llm_calls == 0 and second.cache_hits >= first.llm_calls
    ratings = [[(r["request_id"], r["rating"], r["feedback_text"]) for r in rows(tmp_path / d / "requests.csv")]
               for d in "ab"]
    assert ratings[0] == ratings[1]
    assert float(rows(tmp_path / "b" / "slots.csv")[-1]["cache_hit_rate"]) == 1.0
    assert guard.outside() == []


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


class HostileBackend(ScriptedBackend):
    """Answers with text that would do harm if a shell or eval ever saw it."""

    def give_feedback(self, persona: Persona, delivery: Delivery) -> Feedback:
        answer = super().give_feedback(persona, delivery)
        return Feedback(HOSTILE_FEEDBACK, answer.rating, answer.expected_rating, HOSTILE_FEEDBACK, 0.0, self.name,
                        valid=True)


def test_prompts_and_feedback_are_data_never_commands_or_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(assemble_module, "build_backends", lambda cfg, n: ([HostileBackend()], lambda: None))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    topics = [{"name": f"hostile {i}", "prompts": [p]} for i, p in enumerate(HOSTILE_PROMPTS)]
    cfg = shipped({"feedback": {"mode": "live", "cache": "feedback.sqlite"},
                   "prompts": {"topics": topics, "trend_share": 0.0}, "users": {"request_rate_per_s": 0.1}})
    result = run_scenario(cfg, steps=40, out=work / "r", log=lambda line: None)
    assert result.requests_rated > 0
    made = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert [m for m in made if "pwned" in m] == []
    assert not any("pwned" in p.name for p in ROOT.iterdir())
    text = (work / "r" / "requests.csv").read_text()
    assert HOSTILE_FEEDBACK in text and sum(p in text for p in HOSTILE_PROMPTS) >= 3
