"""Replaying a run's finished slots on --resume: the personas' recorded answers served again, every replayed
slot checked against its row, then the tables cut back to the finished slots.
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING

from agents.feedback import Delivery, Feedback, FeedbackStats
from agents.persona import Persona
from scenarios.loader import ScenarioError
from scenarios.tables import REQUEST_FIELDS, RunFolder, csv_text, read_table
from world.files import write_atomic
from world.runner import ROW_METRICS

if TYPE_CHECKING:
    from world.feedback import FeedbackPool
    from world.runner import SlotRunner

# slot columns that a replay need not repeat: counts of where answers came from and wall-clock latency
NOT_REPLAYED = ("llm_calls", "cache_hits", "cache_hit_rate", "llm_median_latency_s")


class RecordedAnswers:
    """The personas' answers a run recorded, served again while a resumed run replays its finished slots.

    A `FeedbackService` in front of the run's pool: a delivery the record holds an answer to
    gets that answer, anything else goes to the model. `stop()` ends the replay.
    """

    def __init__(self, rows: list[dict[str, str]]) -> None:
        self.pool: FeedbackPool | None = None
        self.answers: dict[tuple[str, str], list[Feedback]] = defaultdict(list)
        for row in rows:
            if row["feedback_backend"] in ("", "learned") or row["feedback_valid"] == "":
                continue      # a silent user, or a rating predicted by the learned model (predicted again)
            delivery = Delivery(prompt=row["prompt"], steps=int(row["steps"]), sharpness=float(row["sharpness"]),
                                fidelity=float(row["fidelity"]), wait_s=float(row["wait_s"]), seen=row["seen"])
            self.answers[self._key(row["persona"], delivery)].append(Feedback(
                text=row["feedback_text"], rating=int(row["rating"]) if row["rating"] else None,
                expected_rating=float(row["expected_rating"]) if row["expected_rating"] else None, raw="",
                latency_s=0.0, backend=row["feedback_backend"], valid=row["feedback_valid"] == "True",
                cached=True, error=row["feedback_error"], failed=row["feedback_failed"] == "True"))

    @staticmethod
    def _key(persona: str, delivery: Delivery) -> tuple[str, str]:
        return persona, json.dumps(delivery.key(), sort_keys=True)

    def submit(self, persona: Persona, delivery: Delivery) -> Future[Feedback]:
        answers = self.answers.get(self._key(persona.summary(), delivery))
        if answers:
            done: Future[Feedback] = Future()
            done.set_result(answers.pop(0))
            return done
        return self._pool.submit(persona, delivery)

    def stop(self) -> None:
        """The replay is over: every later answer comes from the model."""
        self.answers.clear()

    @property
    def _pool(self) -> FeedbackPool:
        if self.pool is None:
            raise RuntimeError("RecordedAnswers is used before assemble gave it a pool")
        return self.pool

    @property
    def stats(self) -> FeedbackStats:
        return self._pool.stats

    @property
    def agreement(self) -> dict[str, float]:
        return self._pool.agreement

    def learn(self, persona: Persona, delivery: Delivery, feedback: Feedback) -> None:
        self._pool.learn(persona, delivery, feedback)

    def refresh(self) -> None:
        self._pool.refresh()

    def close(self) -> None:
        self._pool.close()


def check_replay(run: SlotRunner, row: dict[str, str], folder: RunFolder) -> None:
    """A replayed slot must match its record; otherwise the run cannot go on where it stopped."""
    for key in ROW_METRICS:
        if key in NOT_REPLAYED or key not in row:
            continue
        got, want = float(run.row[key]), float(row[key])
        if not (got == want or (math.isnan(got) and math.isnan(want)) or math.isclose(got, want, rel_tol=1e-9)):
            raise ScenarioError(
                f"--resume: slot {run.model.slot} does not replay as recorded in {folder.slots} ({key}: recorded "
                f"{row[key]}, replayed {got!r}); the code, the installed packages or the files the run reads have "
                f"changed since it started. Nothing was changed in the run folder; start a new run instead")


def cut_back(folder: RunFolder, done: int) -> None:
    """Cut the tables back to the first `done` slots (a slot cut off by the interruption is dropped)."""
    slots = read_table(folder.slots)[:done]
    requests = [r for r in read_table(folder.requests) if row_slot(r["finished_slot"]) <= done]
    for path, fields, rows in ((folder.slots, ROW_METRICS, slots), (folder.requests, REQUEST_FIELDS, requests)):
        write_atomic(path, csv_text([dict(zip(fields, fields)), *rows], fields))


def header(path: Path) -> tuple[str, ...]:
    if not path.is_file():
        return ()
    with path.open(newline="", encoding="utf-8") as f:
        return tuple(next(csv.reader(f), ()))


def row_slot(text: str | None) -> int:
    """A requests.csv row's finished_slot as a number."""
    try:
        return int(text or 0)
    except ValueError:
        return 1 << 62      # unreadable: treated as after every finished slot
