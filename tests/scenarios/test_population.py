"""Large populations through `run_scenario`: learned feedback, profiled images, memory that does not grow per slot.

The runs here are the shipped city block with many users, the frozen learned feedback model (its shipped
start fit, no LLM), profiled GPU servers (one per 100 users, as the benchmarks use) and the greedy base
station: the shipped G-DDPG puts every step on the phones, which would leave the GPU servers idle.
"""

from __future__ import annotations

import csv
import gc
import json
import math
import resource
import sys
from pathlib import Path

import numpy as np

from scenarios.loader import load_scenario
from scenarios.run import run_scenario
from scenarios.tables import REQUEST_FIELDS
from tests.shipped import CITY_BLOCK, shipped
from world.config import ScenarioConfig
from world.runner import SlotRunner


def population(users: int, request_rate_per_s: float = 0.02) -> ScenarioConfig:
    """The shipped city block with `users` users in learned (frozen) and profiled mode."""
    server = load_scenario(CITY_BLOCK).gpu_servers[0].model_dump()
    return shipped({
        "users": {"count": users, "request_rate_per_s": request_rate_per_s},
        "gpu_servers": [dict(server, name=f"edge-{k}") for k in range(max(1, users // 100))],
        "feedback": {"mode": "learned", "learned_live_share": 0.0},
        "base_station": {"policy": "greedy"},
    })


def resident_mb() -> float:
    """This process's resident memory now, MB; NaN where /proc is not there."""
    statm = Path("/proc/self/statm")
    if not statm.is_file():
        return math.nan
    return int(statm.read_text().split()[1]) * resource.getpagesize() / 2 ** 20


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_a_long_run_of_many_users_does_not_grow_per_slot(tmp_path: Path) -> None:
    """2,000 users at 0.05 requests/s (about 100 requests a slot) for 300 slots.

    Measured as Python's allocated memory blocks (`sys.getallocatedblocks`, after a collection), which
    costs nothing while the run goes, unlike tracing every allocation. The first 150 slots are the
    warm-up: every user comes to hold its last two images (`MobileUser.received`, about 40 blocks each).
    After that a run keeps per slot only the data collector's row (a few dozen blocks), while anything
    kept per request adds at least one block per request: one float in a list is one block, and the run's
    tally used to keep two. So the fitted growth from slot 150 to 300 must stay below half a block per
    request issued: about 50 blocks a slot here, against some 15 measured and 200 with the old tally.

    Blocks are Python's small objects only; resident memory (Linux) also sees large strings, array
    buffers and native memory. It grew 0.4 MB over those 150 slots alone, 8.2 MB once late in a full suite
    run beside two busy loops (the allocator and other tests' leftovers move it too); 16 MB would be a
    kilobyte kept for each of the 15,000 requests.
    """
    cfg = population(2000, request_rate_per_s=0.05)
    samples: list[tuple[int, int, int, float]] = []     # slot, allocated blocks, requests issued so far, RSS MB
    issued = 0

    def sample(run: SlotRunner) -> None:
        nonlocal issued
        issued += int(run.row["requests_issued"])
        if 150 <= run.model.slot <= 300 and run.model.slot % 10 == 0:     # after 300: finishing, no new requests
            gc.collect()
            samples.append((run.model.slot, sys.getallocatedblocks(), issued, resident_mb()))

    out = tmp_path / "run"
    result = run_scenario(cfg, steps=300, seed=42, out=out, log=lambda line: None, observer=sample)

    slots, blocks, requests, resident = np.array(samples, dtype=float).T
    per_slot = np.polyfit(slots, blocks, 1)[0]
    requests_per_slot = (requests[-1] - requests[0]) / (slots[-1] - slots[0])
    assert requests_per_slot > 80
    assert per_slot < 0.5 * requests_per_slot, (
        f"allocated blocks grew by {per_slot:.0f} a slot after the warm-up, with {requests_per_slot:.0f} "
        f"requests a slot: something keeps what every request leaves behind")
    if not np.isnan(resident[0]):
        assert resident[-1] - resident[0] < 16.0, f"resident memory grew {resident[-1] - resident[0]:.1f} MB"
    assert [int(r["slot"]) for r in rows(out / "slots.csv")] == list(range(1, 301))
    assert len(rows(out / "requests.csv")) == result.requests_rated > 0
    assert 0.0 < result.mean_qoe < 1.0 and result.mean_wait_s > 0.0


def test_ten_thousand_users_run_and_write_their_files(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run_scenario(population(10_000), steps=20, seed=42, out=out, log=lambda line: None)
    assert result.slots == 20 and result.requests_issued > 2000      # 10,000 x 0.02/s x 20 s = 4,000
    assert [int(r["slot"]) for r in rows(out / "slots.csv")] == list(range(1, 21))
    assert len(rows(out / "users.csv")) == 10_000
    requests = rows(out / "requests.csv")
    assert len(requests) == result.requests_rated > 0 and tuple(requests[0]) == REQUEST_FIELDS
    assert all(r["feedback_backend"] == "learned" for r in requests)
    assert all(r["server"].startswith("edge-") for r in requests)   # the greedy station sends every step there
    assert json.loads((out / "run.json").read_text())["status"] == "finished"
    assert (out / "config.yaml").is_file()
