"""Who a mobile user is: Big Five traits, a name, a background, and how the traits show.

The mapping from traits to behaviour lives in one place, `TRAIT_BEHAVIOUR`.
Sources:
- Du et al., "User-Centric Interactive AI for Distributed Diffusion
  Model-based AIGC" (2023): openness goes with a taste for unusual, vivid
  compositions; conscientiousness with a preference for clean, correct,
  orderly images.
- Costa & McCrae, NEO-PI-R facets: neuroticism (anxiety, angry hostility,
  impulsiveness: waiting makes such a person tense and irritable),
  agreeableness (trust, tender-mindedness: lenient, gives the benefit of the
  doubt), conscientiousness (order, dutifulness: errors bother them),
  extraversion (positive emotion, talkativeness: expressive answers).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

TRAITS = ("openness", "conscientiousness", "extraversion", "agreeableness", "neuroticism")

HIGH, LOW = 0.65, 0.35     # trait levels above / below these are described; between them, nothing

# trait -> (behaviour when high, behaviour when low)
TRAIT_BEHAVIOUR: dict[str, tuple[str, str]] = {
    "openness": (
        "You are curious and enjoy unusual, surprising compositions; an unexpected take on your prompt can delight you.",
        "You like conventional images; you want exactly the ordinary picture you asked for, nothing odd.",
    ),
    "conscientiousness": (
        "You are meticulous: blur, noise and wrong details bother you a lot, and you rate them down hard.",
        "You are easy-going about details; a bit of blur or a small mistake hardly matters to you.",
    ),
    "extraversion": (
        "You are outgoing and expressive; you say what you feel with energy.",
        "You are reserved; you answer briefly and plainly.",
    ),
    "agreeableness": (
        "You are kind and lenient; you give the service the benefit of the doubt and rate generously.",
        "You are blunt and critical; you are quick to complain and slow to praise.",
    ),
    "neuroticism": (
        "You are anxious and impatient: every second of waiting makes you more irritable, and a long wait spoils "
        "even a good image for you.",
        "You are calm and patient; waiting does not bother you much.",
    ),
}


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
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{f.name} must be a number in [0, 1], got {value!r}")

    def as_tuple(self) -> tuple[float, ...]:
        """Traits in the order of TRAITS."""
        return tuple(getattr(self, t) for t in TRAITS)


@dataclass(frozen=True)
class Persona:
    """A person: a name, a short background and Big Five traits."""

    name: str
    traits: BigFive
    background: str = ""

    def behaviour(self) -> list[str]:
        """The traits rendered as behaviour a language model can act on."""
        lines = []
        for trait in TRAITS:
            level = getattr(self.traits, trait)
            high, low = TRAIT_BEHAVIOUR[trait]
            if level >= HIGH:
                lines.append(high)
            elif level <= LOW:
                lines.append(low)
        return lines

    def describe(self) -> str:
        """Who this persona is, in the second person, for a system prompt."""
        scores = ", ".join(f"{t} {getattr(self.traits, t):.2f}" for t in TRAITS)
        parts = [f"You are {self.name}."]
        if self.background:
            parts.append(self.background)
        parts.extend(self.behaviour())
        parts.append(f"(Big Five scores from 0 to 1: {scores}.)")
        return " ".join(parts)

    def summary(self) -> str:
        """A few words for tables: the traits that stand out."""
        marks = [f"{'+' if getattr(self.traits, t) >= HIGH else '-'}{t[0].upper()}"
                 for t in TRAITS if not LOW < getattr(self.traits, t) < HIGH]
        return f"{self.name} ({' '.join(marks) or 'average'})"
