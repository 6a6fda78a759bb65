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


# --- rubric, wait rule and example answers, built from the traits -----------------------------------

from agents.persona import LOOKS, WAITS, Persona  # noqa: E402

MIDDLE = dict.fromkeys(TRAITS, 0.5)


def persona(**changes: float) -> Persona:
    return Persona("P", BigFive(**MIDDLE | changes))


@pytest.mark.parametrize("changes", [{}, {"agreeableness": 0.1}, {"agreeableness": 0.9}, {"neuroticism": 0.9},
                                     {"conscientiousness": 0.9}, {"conscientiousness": 0.1},
                                     {"conscientiousness": 0.9, "agreeableness": 0.1, "neuroticism": 0.9}])
def test_rubric_never_falls_as_the_look_improves(changes: dict[str, float]) -> None:
    ratings = [persona(**changes).rubric()[look] for look in LOOKS]
    assert ratings == sorted(ratings) and all(1 <= r <= 5 for r in ratings)
    assert ratings[-1] > ratings[0] + 1


def test_agreeableness_moves_the_whole_scale() -> None:
    critic, lenient = persona(agreeableness=0.1).rubric(), persona(agreeableness=0.9).rubric()
    average = persona().rubric()
    assert all(critic[look] <= average[look] <= lenient[look] for look in LOOKS)
    assert max(critic.values()) == 4 and min(lenient.values()) == 2
    assert sum(lenient.values()) - sum(critic.values()) >= len(LOOKS)       # a point apart on average


def test_the_anxious_scale_leaves_room_for_waiting_to_cost() -> None:
    anxious, calm = persona(neuroticism=0.9), persona(neuroticism=0.1)
    assert min(anxious.rubric().values()) == 2
    assert anxious.wait_cost() == {"almost instant": 0, "short": 0, "a bit long": 1, "very long": 2}
    assert set(calm.wait_cost().values()) == {0}
    assert persona().wait_cost()["very long"] == 1
    for look in LOOKS:
        assert anxious.rating(look, "very long") < anxious.rating(look, "almost instant")
        assert calm.rating(look, "very long") == calm.rating(look, "almost instant")
    assert "Waiting never lowers your rating" in calm.rubric_text()
    assert "a very long wait two points" in anxious.rubric_text()
    assert not any(c.isdigit() for c in anxious.rubric_text().split(".", 1)[1])    # points in words


def test_rubric_text_gives_each_look_its_rating() -> None:
    critic = persona(agreeableness=0.1)
    text = critic.rubric_text()
    for look, rating in critic.rubric().items():
        assert f"{look} {rating}" in text


def test_examples_show_each_look_at_contrasting_waits_and_speak_of_both() -> None:
    for p in (persona(), persona(neuroticism=0.9), persona(neuroticism=0.1), persona(agreeableness=0.1),
              persona(openness=0.9, extraversion=0.9), persona(extraversion=0.1)):
        examples = p.examples()
        looks = {e.look for e in examples}
        assert len(looks) == 2
        for look in looks:
            waits = sorted(WAITS.index(e.wait) for e in examples if e.look == look)
            assert waits[0] <= WAITS.index("short") and waits[-1] >= WAITS.index("a bit long")     # quick and slow
        for e in examples:
            assert e.rating == p.rating(e.look, e.wait, e.match)
            assert e.feedback.startswith("My ") and e.subject.split()[1] in e.feedback     # first person, names it
            assert any(w in e.feedback for w in ("wait", "at once", "quickly"))          # speaks of the wait
            assert e.feedback[-1] in ".!" and len(e.feedback.split()) <= 25
    anxious = {(e.look, e.wait): e for e in persona(neuroticism=0.9).examples()}
    calm = {(e.look, e.wait): e for e in persona(neuroticism=0.1).examples()}
    assert "endless" in anxious[("sharp", "very long")].feedback and "impatient" in anxious[("sharp", "a bit long")].feedback
    quick = anxious[("sharp", "almost instant")].feedback + anxious[("blurry and grainy", "short")].feedback
    assert "impatient" not in quick and "endless" not in quick
    assert "did not bother me" in calm[("sharp", "very long")].feedback
    assert anxious[("sharp", "very long")].rating < anxious[("sharp", "almost instant")].rating
    assert calm[("sharp", "very long")].rating == calm[("sharp", "almost instant")].rating
    for p in (persona(), persona(neuroticism=0.9), persona(neuroticism=0.1), persona(agreeableness=0.1)):
        by = {(e.look, e.wait): e.rating for e in p.examples()}
        for wait in ("a bit long", "very long"):          # at every wait, the better look earns more
            assert by[("sharp", wait)] > by[("blurry and grainy", wait)]


def test_voice_follows_the_traits() -> None:
    def said(**changes: float) -> str:
        return " ".join(e.feedback for e in persona(**changes).examples())

    assert "not good enough" in said(agreeableness=0.1).lower() and "love it" in said(agreeableness=0.9)
    assert "bothers me" in said(conscientiousness=0.9) and "no matter" in said(conscientiousness=0.1)
    assert "!" in said(extraversion=0.9) and "!" not in said(extraversion=0.1)
    assert "striking" in said(openness=0.9) and "striking" not in said()
    assert len(set(said(**{t: 0.9}) for t in TRAITS)) == len(TRAITS)
