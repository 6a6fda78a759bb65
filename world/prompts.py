"""The prompt catalog: what users ask for, grouped by topic.

Similar prompts come together in time: every `trend_period_s` one topic
becomes the trend (drawn by weight), and each request comes from the trending
topic with probability `trend_share`, otherwise from a topic drawn by weight.
Within a topic the prompt is uniform.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_PROMPT_CHARS = 300


class Topic(BaseModel):
    """A group of prompts that mean nearly the same thing."""

    # strict: a number is a number (true is not 1); no NaN or infinity
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    name: str = Field(min_length=1, max_length=60, description="Topic label.")
    # a bound keeps the sum of the weights, and so the topic probabilities, finite
    weight: float = Field(1.0, gt=0, le=1e6, description="Relative popularity of the topic, dimensionless.")
    prompts: tuple[str, ...] = Field(   # strict=False: a YAML list is a tuple; its items stay strict
        min_length=1, max_length=1000, strict=False, description="Prompts of this topic.")

    @field_validator("name")
    @classmethod
    def _printable_name(cls, name: str) -> str:
        if not name.isprintable():
            raise ValueError(f"topic name {name[:40]!r} contains control characters")
        return name

    @field_validator("prompts")
    @classmethod
    def _printable(cls, prompts: tuple[str, ...]) -> tuple[str, ...]:
        for p in prompts:
            if not p.strip():
                raise ValueError("a prompt is empty")
            if len(p) > MAX_PROMPT_CHARS:
                raise ValueError(f"a prompt has {len(p)} characters; at most {MAX_PROMPT_CHARS} are allowed")
            if not p.isprintable():
                raise ValueError(f"prompt {p[:40]!r} contains control characters")
        return prompts


class PromptsConfig(BaseModel):
    """The catalog and how requests draw from it."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    # one trend is drawn per elapsed period: a period of nanoseconds would draw without end
    trend_period_s: float = Field(60.0, ge=1, description="How long one topic stays the trend, s.")
    trend_share: float = Field(0.6, ge=0, le=1, description="Probability that a request follows the trend.")
    topics: tuple[Topic, ...] = Field(
        min_length=1, max_length=1000, strict=False, description="Topics of the catalog.")

    @model_validator(mode="after")
    def _unique_names(self) -> PromptsConfig:
        names = [t.name for t in self.topics]
        if len(set(names)) != len(names):
            raise ValueError(f"topic names must be unique, got {names}")
        return self


class PromptCatalog:
    """Draws (topic, prompt) pairs for requests."""

    def __init__(self, cfg: PromptsConfig) -> None:
        self.cfg = cfg
        weights = np.array([t.weight for t in cfg.topics])
        self.p_topic = weights / weights.sum()
        self._trend_period = -1
        self.trend = 0

    def draw(self, now_s: float, rng: np.random.Generator) -> tuple[str, str]:
        """One request's topic and prompt at simulated time now_s."""
        period = int(now_s // self.cfg.trend_period_s)
        while self._trend_period < period:     # one draw per elapsed period keeps runs reproducible
            self.trend = int(rng.choice(len(self.p_topic), p=self.p_topic))
            self._trend_period += 1
        if rng.random() < self.cfg.trend_share:
            k = self.trend
        else:
            k = int(rng.choice(len(self.p_topic), p=self.p_topic))
        topic = self.cfg.topics[k]
        return topic.name, topic.prompts[int(rng.integers(len(topic.prompts)))]
