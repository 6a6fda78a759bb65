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

# trait -> (behaviour when high, behaviour when low). Short, concrete and in plain words: a small model
# copies these phrases into its answer, and the answer's words then carry its rating.
TRAIT_BEHAVIOUR: dict[str, tuple[str, str]] = {
    "openness": (
        "You love unusual, surprising pictures.",
        "You like plain, ordinary pictures.",
    ),
    "conscientiousness": (
        "You are meticulous: grain and blur annoy you.",
        "You are easy-going: small flaws do not bother you.",
    ),
    "extraversion": (
        "You are outgoing and say what you feel.",
        "You are reserved and brief.",
    ),
    "agreeableness": (
        "You are lenient and rate generously.",
        "You are blunt and critical, hard to please.",
    ),
    "neuroticism": (
        "You are anxious and impatient: a long wait spoils even a good picture for you.",
        "You are calm and patient: waiting does not bother you.",
    ),
}

# How the wait feels, by neuroticism (high, middle, low), for waits that are long or very long:
# the same trait, rendered where the wait is described, so the model meets it beside the fact.
WAIT_FEELING: dict[str, tuple[str, str, str]] = {
    "long": ("It felt endless; you are irritated.", "It was a bit annoying.", "You did not mind at all."),
    "very long": ("It felt endless; you are fed up.", "It was annoying.", "You did not mind at all."),
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

    def wait_feeling(self, wait: str) -> str:
        """How this persona feels about a wait described as `wait` ("" when the wait is not long)."""
        feelings = WAIT_FEELING.get(wait)
        if feelings is None:
            return ""
        n = self.traits.neuroticism
        return feelings[0] if n >= HIGH else feelings[2] if n <= LOW else feelings[1]

    def describe(self) -> str:
        """Who this persona is, in the second person, for a system prompt: behaviour, never the scores."""
        return " ".join([f"You are {self.name}.", *([self.background] if self.background else []),
                         *self.behaviour()])

    def summary(self) -> str:
        """A few words for tables: the traits that stand out."""
        marks = [f"{'+' if getattr(self.traits, t) >= HIGH else '-'}{t[0].upper()}"
                 for t in TRAITS if not LOW < getattr(self.traits, t) < HIGH]
        return f"{self.name} ({' '.join(marks) or 'average'})"
