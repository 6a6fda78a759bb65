"""A block run slot by slot with its feedback service beside it.

`CityBlock.step()` is the world's slot: users move, the base station allocates, the clock runs, and the
slot's own figures (`world.city.SLOT_METRICS`). The feedback service is not the world's: `SlotRunner`
refits it on its cadence (`feedback.learned_refresh_slots`) and reads its statistics into the slot's
row (`FEEDBACK_METRICS`). A run (`scenarios.run`) and a training episode (`policies.env`) go slot by
slot through it, so the service is kept one way; a feedback fit (`scenarios.fit_feedback`) steps a bare
block and refits once, at the end.
"""

from __future__ import annotations

import math

from agents.feedback import FeedbackService
from world.city import SLOT_METRICS, CityBlock

# cumulative since the start of the run, but bounded: the median latency is over the latest model calls
# (agents.feedback.LATENCY_WINDOW), learned_pairs counts the newest pairs kept (world.feedback_model.MAX_PAIRS)
FEEDBACK_METRICS = ("llm_calls", "cache_hits", "cache_hit_rate", "learned_answers", "llm_median_latency_s",
                    "learned_pairs", "learned_mae", "learned_spearman")
ROW_METRICS = SLOT_METRICS + FEEDBACK_METRICS     # a row of slots.csv


def feedback_metrics(service: FeedbackService | None) -> dict[str, float]:
    """Where the answers came from so far, how long the model took, and how a learned model agrees."""
    stats = service.stats if service else None
    asked = stats.calls + stats.cache_hits if stats else 0
    agreement = service.agreement if service else {}
    return {
        "llm_calls": stats.calls if stats else 0,
        "cache_hits": stats.cache_hits if stats else 0,
        "cache_hit_rate": stats.cache_hits / asked if asked else math.nan,
        "learned_answers": stats.learned if stats else 0,
        "llm_median_latency_s": stats.median_latency_s() if stats else math.nan,
        "learned_pairs": agreement.get("pairs", 0),
        "learned_mae": agreement.get("mae", math.nan),
        "learned_spearman": agreement.get("spearman", math.nan),
    }


class SlotRunner:
    """Steps a block and keeps its feedback service: refits it every `learned_refresh_slots` slots, and
    gives each slot's row (the world's figures, then the service's).

    `step()` is a whole slot; `sense()` and `serve()` are its halves, for a caller that decides the
    base station's actions in between (`policies.env.AllocationEnv`).

    Attributes:
        model: the block.
        row: the last slot's row, `ROW_METRICS` (zeros before the first slot).
    """

    def __init__(self, model: CityBlock) -> None:
        self.model = model
        self.feedback = model.feedback
        self.refresh_slots = model.cfg.feedback.learned_refresh_slots
        self.row: dict[str, float] = {**model.slot_metrics, **feedback_metrics(self.feedback)}

    def step(self) -> dict[str, float]:
        """One slot; returns its row."""
        self.sense()
        return self.serve()

    def sense(self) -> None:
        """The slot's first half: users move and the channel is redrawn."""
        self.model.sense()

    def serve(self) -> dict[str, float]:
        """The slot's second half (the base station allocates, the clock runs), then the service's upkeep;
        returns the slot's row."""
        self.model.serve()
        if self.feedback is not None and self.model.slot % self.refresh_slots == 0:
            self.feedback.refresh()
        self.row = {**self.model.slot_metrics, **feedback_metrics(self.feedback)}
        return self.row
