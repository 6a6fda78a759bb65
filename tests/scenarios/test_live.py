"""The live view: frames rendered to text with rich's recording console, and the plain fallback."""

from __future__ import annotations

import io
import math
import re
import time
from pathlib import Path

import pytest
from rich.console import Console

import scenarios.assemble as assemble_module
from agents.feedback import Feedback
from agents.request import ImageRequest
from scenarios.cells import request_cells
from scenarios.cli import main
from scenarios.live import LiveView
from scenarios.panels import SERVER, STATION, USER, USER_UNRATED, Snapshot, sparkline
from scenarios.run import run_scenario
from tests.shipped import shipped, silent_copy
from tests.world.scripted import ScriptedBackend
from world.config import ScenarioConfig

PANELS = ("City block", "Recent requests", "GPU servers", "Learner", "Language model")


def scenario(**feedback: object) -> ScenarioConfig:
    return shipped({"users": {"count": 12, "request_rate_per_s": 0.1}, "feedback": feedback or {"mode": "silent"}})


def frame(view: LiveView, width: int = 170, height: int = 50) -> str:
    console = Console(record=True, width=width, height=height, file=io.StringIO())
    view.console = console      # the view lays itself out for its console's size
    console.print(view.render())
    return console.export_text()


def observed_run(tmp_path: Path, cfg: ScenarioConfig, steps: int = 30) -> LiveView:
    view = LiveView(Console(file=io.StringIO()), steps, out=str(tmp_path / "r"))
    run_scenario(cfg, steps=steps, out=tmp_path / "r", log=view.note, observer=view.observe)
    return view


def test_frame_shows_map_glyphs_feedback_and_every_panel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(assemble_module, "build_backends", lambda cfg, n: ([ScriptedBackend()], lambda: None))
    view = observed_run(tmp_path, scenario(mode="live", cache=None, think_s=(0.5, 1.0)))
    text = frame(view)
    for title in PANELS:
        assert title in text
    assert USER in text and STATION in text and SERVER in text       # users with a rating, station, server
    assert "It is fine." in text                                     # the scripted persona's sentence
    assert "/5" in text and "slot 30/30" in text and "slots/s" in text
    assert "no learner" in text                                      # honest about what does not exist
    assert "steps saved" in text and "not yet" not in text           # the GPU server shares prefixes
    assert "live:" in text and "cache hits" in text


def test_learner_panel_names_the_trained_base_station(tmp_path: Path) -> None:
    cfg = shipped({"users": {"count": 12, "request_rate_per_s": 0.1}, "feedback": {"mode": "silent"},
                   "base_station": {"policy": "gddpg", "checkpoint": "checkpoints/gddpg_city_block.pt"}})
    text = frame(observed_run(tmp_path, cfg, steps=5))
    assert "policy gddpg (trained:" in text and "gddpg_city_block.pt" in text and "no learner" not in text


def test_silent_run_says_users_are_silent(tmp_path: Path) -> None:
    text = frame(observed_run(tmp_path, scenario(), steps=20))
    assert USER_UNRATED in text and "(silent)" in text
    assert "users are silent" in text and "QoE: none" in text


def test_before_the_first_slot_the_view_says_it_is_starting() -> None:
    assert "starting" in frame(LiveView(Console(file=io.StringIO()), 10))


def test_cluster_and_shared_steps_are_read_where_they_will_appear() -> None:
    r = ImageRequest(request_id=1, user_id=1, persona="Ana (+N)", prompt="a red circle", topic="t", issued_s=0.0,
                     server_steps=30, device_steps=10, power_w=0.5, delivered_s=2.0)
    r.feedback = Feedback("Too slow.", 2, None, "{}", 0.1, "x", valid=True)
    cells = [str(c) for c in request_cells(r)]
    assert cells[2] == "-" and cells[3] == "-" and cells[4] == "30+10"
    r.cluster, r.shared_steps = "3", 12
    cells = [str(c) for c in request_cells(r)]
    assert cells[2] == "3" and cells[3] == "12" and cells[4] == "30+10"
    assert "2/5" in cells and "Too slow." in cells


def test_sparkline_buckets_and_gaps() -> None:
    assert sparkline([]) == ""
    assert sparkline([0.0, 1.0]) == "\u2581\u2588"
    assert sparkline([math.nan, 0.5], width=2)[0] == " "
    assert len(sparkline([0.5] * 1000, width=40)) <= 40


def test_the_view_redraws_on_its_own_while_a_slot_takes_long() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    with LiveView(console, 10, refresh_per_second=10) as view:
        deadline = time.monotonic() + 120     # no slot finishes: the clock thread still draws (bounded wait)
        while view.frames < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert view.frames >= 3


def terminal(buffer: io.StringIO):  # noqa: ANN201
    return lambda: Console(file=buffer, force_terminal=True, width=160, height=50)


def test_outside_a_terminal_progress_is_plain_ascii_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(silent_copy(tmp_path)), "--steps", "20", "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert all(32 <= ord(c) < 127 for c in out.replace("\n", "")), "control or non-ASCII characters in the log"
    lines = out.splitlines()
    assert lines[0].startswith("running city_block") and sum(line.startswith("slot ") for line in lines) == 10
    assert any(line.startswith("QoE: ") for line in lines) and lines[-1] == f"run folder: {tmp_path / 'r'}"


def test_in_a_terminal_the_live_view_draws_unless_no_live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    screen = io.StringIO()
    monkeypatch.setattr("rich.console.Console", terminal(screen))     # the command imports it when it runs
    silent = str(silent_copy(tmp_path))
    assert main(["run", silent, "--steps", "5", "--out", str(tmp_path / "a")]) == 0
    assert "City block" in screen.getvalue() and "summary" in screen.getvalue()
    assert "slot 5/5" not in capsys.readouterr().out        # no plain progress lines under the view
    screen.truncate(0)
    assert main(["run", silent, "--steps", "5", "--out", str(tmp_path / "b"), "--no-live"]) == 0
    assert "City block" not in screen.getvalue()
    assert "slot 5/5" in capsys.readouterr().out


def test_header_and_footer_show_the_same_slot(tmp_path: Path) -> None:
    """The header's clock and the footer's counts come from the same snapshot, also when snapshots are rare
    (a slow machine, or a slot that then waits long for the language model): one clock."""
    import re

    view = LiveView(Console(file=io.StringIO()), 40, out=str(tmp_path / "r"), refresh_per_second=1e-6)
    seen = []

    def check(run) -> None:  # noqa: ANN001
        view.observe(run)
        lines = frame(view).splitlines()
        header = re.search(r"slot (\d+)/40", lines[0])
        footer = [re.match(r"slot (\d+)/40: issued (\d+)", line) for line in lines]
        footer = [m for m in footer if m]
        assert header and len(footer) == 1, lines
        assert header.group(1) == footer[0].group(1), (lines[0], footer[0].group(0))
        seen.append(header.group(1))

    run_scenario(scenario(), steps=40, out=tmp_path / "r", log=view.note, observer=check)
    assert len(set(seen)) >= 4          # rare snapshots: a few slots are seen, each the same top and bottom


def test_feedback_sentences_wrap_and_narrow_columns_are_left_out_not_cut() -> None:
    r = ImageRequest(request_id=1, user_id=1, persona="Ana 12 (+O)", prompt="a red circle on a dotted blue field",
                     topic="t", issued_s=0.0, server_steps=18, device_steps=22, power_w=0.75, delivered_s=12.5)
    sentence = "The circle is there but the dots are smeared and I waited far longer than I hoped, 12 seconds."
    r.feedback = Feedback(sentence, 2, None, "{}", 0.1, "x", valid=True)
    view = LiveView(Console(file=io.StringIO()), 10)
    snapshot = Snapshot(slot=1, time_s=1.0, wall_s=1.0, slots_per_s=1.0, users=(), servers=(), metrics={},
                        requests=(r,), qoe=(), invalid=0, failed=0, learner=None)
    for width in (80, 100, 160):
        console = Console(record=True, width=width, file=io.StringIO())
        console.print(view.panels.requests_panel(snapshot, width))
        text = console.export_text()
        words = " ".join(line.strip("│ ") for line in text.splitlines())
        for word in sentence.split():
            assert word in words, (width, word, text)           # wrapped, every word whole
        assert "Ana 12 (+O)" in text and "2/5" in text
        assert not re.search(r"[0-9.,/+]\u2026", text), text
        if width >= 160:
            assert "18+22" in text and "0.75 W" in text and "12.5 s" in text


def test_an_empty_table_says_no_request_finished_yet_in_one_piece() -> None:
    view = LiveView(Console(file=io.StringIO()), 10)
    empty = Snapshot(slot=1, time_s=1.0, wall_s=1.0, slots_per_s=1.0, users=(), servers=(), metrics={},
                     requests=(), qoe=(), invalid=0, failed=0, learner=None)
    for width in (80, 160):
        console = Console(record=True, width=width, file=io.StringIO())
        console.print(view.panels.requests_panel(empty, width))
        assert "no finished request yet" in console.export_text()


def test_recent_requests_show_as_many_rows_as_fit_and_never_more() -> None:
    sentences = ["Fine.", "The circle is there but the dots are smeared and I waited far longer than I hoped.",
                 "Sharp, quick, exactly the field of blue I asked for; I would use this again tomorrow morning.",
                 "Too slow.", "Blurred edges everywhere, the colours bleed into each other and nothing is crisp."]
    requests = []
    for k in range(12):
        r = ImageRequest(request_id=k, user_id=k, persona=f"U{k:02d}", prompt="a red circle on a dotted blue field",
                         topic="t", issued_s=0.0, server_steps=18, device_steps=22, power_w=0.75, delivered_s=12.5)
        r.feedback = Feedback(sentences[k % len(sentences)], 1 + k % 5, None, "{}", 0.1, "x", valid=True)
        requests.append(r)
    view = LiveView(Console(file=io.StringIO()), 10)

    def drawn(n: int, width: int, height: int) -> list[str]:
        snap = Snapshot(slot=1, time_s=1.0, wall_s=1.0, slots_per_s=1.0, users=(), servers=(), metrics={},
                        requests=tuple(requests[:n]), qoe=(), invalid=0, failed=0, learner=None)
        console = Console(record=True, width=width, file=io.StringIO())
        console.print(view.panels.requests_panel(snap, width, height))
        return console.export_text().splitlines()

    for width in (80, 100, 120, 160):
        for height in range(5, 30, 3):
            lines = drawn(len(requests), width, height)
            shown = sum(f"U{k:02d}" in "".join(lines) for k in range(len(requests)))
            assert shown >= 1 and len(lines) <= max(height, len(drawn(1, width, 1_000))), (width, height, lines)
            if shown < len(requests):       # one row more would not have fitted
                assert len(drawn(shown + 1, width, 1_000)) > height, (width, height, shown)
