"""Big Five traits: each in [0, 1], or the persona is refused."""

from __future__ import annotations

import math

import pytest

from agents.persona import TRAITS, BigFive


def traits(**changes: float) -> dict[str, float]:
    return {**dict.fromkeys(TRAITS, 0.5), **changes}


@pytest.mark.parametrize("trait", TRAITS)
@pytest.mark.parametrize("value", [-0.01, 1.01, -5.0, 2.0, math.nan, math.inf])
def test_trait_outside_unit_interval_is_refused(trait: str, value: float) -> None:
    with pytest.raises(ValueError, match=trait):
        BigFive(**traits(**{trait: value}))


@pytest.mark.parametrize("value", [0.0, 1.0, 0.5, 1e-12])
def test_bounds_are_allowed(value: float) -> None:
    big_five = BigFive(**dict.fromkeys(TRAITS, value))
    assert big_five.as_tuple() == (value,) * 5


def test_as_tuple_follows_trait_order() -> None:
    big_five = BigFive(openness=0.1, conscientiousness=0.2, extraversion=0.3, agreeableness=0.4,
                       neuroticism=0.5)
    assert TRAITS == ("openness", "conscientiousness", "extraversion", "agreeableness", "neuroticism")
    assert big_five.as_tuple() == (0.1, 0.2, 0.3, 0.4, 0.5)
    assert BigFive(0.1, 0.2, 0.3, 0.4, 0.5) == big_five


def test_error_names_the_value() -> None:
    with pytest.raises(ValueError, match=r"neuroticism .*\[0, 1\].*1\.5"):
        BigFive(**traits(neuroticism=1.5))


def test_traits_are_frozen() -> None:
    big_five = BigFive(**traits())
    with pytest.raises(AttributeError):
        big_five.openness = 0.9          # type: ignore[misc]


def test_persona_renders_traits_as_behaviour() -> None:
    from agents.persona import Persona

    calm = Persona("Ben", BigFive(0.9, 0.1, 0.5, 0.9, 0.1))
    text = calm.describe()
    assert "unusual" in text and "easy-going" in text and "lenient" in text and "patient" in text
    assert "0.9" not in text                                 # behaviour, not scores
    assert calm.summary() == "Ben (+O -C +A -N)"
    assert Persona("Mid", BigFive(0.5, 0.5, 0.5, 0.5, 0.5)).behaviour() == []
