"""The live view as a person sees it: the real command in a pseudo-terminal of each common size, its
output replayed on a terminal emulator (pyte), every complete frame checked."""

from __future__ import annotations

import codecs
import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pyte
import pytest
import yaml

from tests.shipped import CITY_BLOCK, ROOT

FRAME_START = "\r\x1b[2K\x1b[1A"     # rich's Live moves the cursor back to the frame's top before each redraw
SHOW_CURSOR = "\x1b[?25h"            # ... and shows the cursor again when it stops, under its last frame
CUT_NUMBER = re.compile(r"[0-9.,%/+]\u2026|\u2026[0-9]")


def frozen_copy(tmp_path: Path) -> Path:
    """The city block with the shipped persona-feedback fit answering (no language model) and profiled images."""
    data = yaml.safe_load(CITY_BLOCK.read_text())
    data["feedback"].update(mode="learned", learned_live_share=0.0,
                            learned_start=str(ROOT / "scenarios" / data["feedback"]["learned_start"]))
    data["imagegen"]["render"] = "profile"
    data["base_station"].update(policy="greedy", checkpoint=None)
    path = tmp_path / "city_block.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def in_terminal(args: list[str], columns: int, rows: int, limit_s: float = 600.0) -> str:
    """Run `python -m scenarios ARGS` on a pseudo-terminal of `columns` x `rows`; everything it wrote."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    env["TERM"] = "xterm-256color"
    proc = subprocess.Popen([sys.executable, "-m", "scenarios", *args], cwd=ROOT, env=env, stdin=slave,
                            stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    out, decoder, deadline = [], codecs.getincrementaldecoder("utf-8")("replace"), time.monotonic() + limit_s
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                continue
            try:
                data = os.read(master, 1 << 16)
            except OSError:         # the command has exited and closed the terminal
                break
            if not data:
                break
            out.append(decoder.decode(data))
        else:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"the command did not finish in {limit_s:.0f} s")
        assert proc.wait(timeout=600) == 0, "".join(out)[-3000:]     # it closed the terminal: a bound, not a pace
    finally:
        os.close(master)
    return "".join(out)


def frames(stream: str, columns: int, rows: int) -> list[list[str]]:
    """The screen as it stood after each complete frame of the live view (the last one included)."""
    screen = pyte.Screen(columns, rows)
    feed = pyte.Stream(screen)
    end = stream.index(SHOW_CURSOR)
    cuts = [m.start() for m in re.finditer(re.escape(FRAME_START), stream[:end])][1:] + [end]
    shots, at = [], 0
    for cut in cuts:
        feed.feed(stream[at:cut])
        at = cut
        shots.append([line.rstrip() for line in screen.display])
    return shots


@pytest.mark.parametrize(("columns", "rows"), [(80, 24), (100, 30), (120, 40), (160, 45)])
def test_the_live_view_fits_the_terminal_and_keeps_one_clock(tmp_path: Path, columns: int, rows: int) -> None:
    steps = 40
    stream = in_terminal(["run", str(frozen_copy(tmp_path)), "--steps", str(steps), "--out", str(tmp_path / "r")],
                         columns, rows)
    shots = [screen for screen in frames(stream, columns, rows) if " aigcsim " not in screen[0]]  # not starting
    # every frame rich drew of the run is checked: the last always, those before it as the machine's speed gives
    assert shots, "the live view drew no frame of the run"
    for screen in shots:
        text = "\n".join(screen)
        header = re.match(r"aigcsim city_block .*slot (\d+)/40", screen[0])
        assert header, f"the header is not the top line:\n{text}"      # nothing scrolled off the top
        footer = [line for line in screen if re.match(r"slot \d+/40: issued", line)]
        assert len(footer) == 1, f"no footer:\n{text}"
        assert footer[0].startswith(f"slot {min(int(header.group(1)), steps)}/40:"), text     # one clock
        assert "Recent requests" in text and "GPU servers" in text
        assert not CUT_NUMBER.search(text), f"a number is cut:\n{text}"
        assert all(line.strip() != "..." for line in screen), f"rich cropped the view:\n{text}"
    last = "\n".join(shots[-1])
    assert re.search(rf"slot {steps}/{steps}(: issued| |$)", last), last       # the last frame is the run's end
    rated = re.search(r"rated (\d+)", last)
    assert rated and int(rated.group(1)) > 0, last
    assert ("City block" in last) == (columns >= 120), f"the map is drawn only where it fits:\n{last}"
    assert "/5" in last                             # ratings are in the recent requests at every size
