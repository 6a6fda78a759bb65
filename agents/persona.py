"""Personality of a mobile user (Big Five)."""

from __future__ import annotations

from dataclasses import dataclass, fields

TRAITS = ("openness", "conscientiousness", "extraversion", "agreeableness", "neuroticism")


@dataclass(frozen=True)
class BigFive:
    """The five traits, each in [0, 1]."""

    openness: float
    conscientiousness: float
    extraversion: float
    agreeableness: float
    neuroticism: float

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{f.name} must be in [0, 1], got {value}")

    def as_tuple(self) -> tuple[float, ...]:
        """Traits in the order of TRAITS."""
        return tuple(getattr(self, t) for t in TRAITS)
