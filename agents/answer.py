"""What a persona's answer must be, and how a raw answer is read.

A language model answers a persona's chat (`agents.feedback.feedback_messages`) with one JSON object:
`ANSWER_SCHEMA` (a short feedback sentence first, then the rating 1-5), which grammar-constrained
backends are given. `parse_answer` reads a raw answer into (sentence, rating) or raises `InvalidAnswer`
with what is wrong, which the backend shows the model when it asks again; `expected_rating` reads the
rating's token probabilities where the backend returns them.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Iterable, Sequence

RATINGS = (1, 2, 3, 4, 5)
MAX_FEEDBACK_CHARS = 300     # a bound on the feedback, not its length: the instructions ask for under 30 words
MAX_FEEDBACK_WORDS = 30      # what the instructions ask for (the example answers have 12-25 words)

ANSWER_SCHEMA: dict = {
    "title": "feedback",
    "type": "object",
    "properties": {
        # the feedback comes first, so the rating is given after the sentence and agrees with it; an answer that
        # reaches maxLength is cut, fails the sentence check and is asked again
        "feedback": {"type": "string", "minLength": 8, "maxLength": MAX_FEEDBACK_CHARS},
        "rating": {"type": "integer", "enum": list(RATINGS)},
    },
    "required": ["feedback", "rating"],
    "additionalProperties": False,
}


class InvalidAnswer(ValueError):
    """The model's answer is not the JSON object the schema asks for."""


FIRST_PERSON = re.compile(r"\b(I|I'm|I've|I'd|I'll|me|my|mine|myself)\b", re.IGNORECASE)
# words no sentence ends with ("what I asked for." and "I think so." do end sentences, so those are not here)
DANGLING = frozenset("a an the and or but nor of with from than my your their very".split())
_CLOSERS = "\"')]}\u201d\u2019"


def sentence_problem(text: str) -> str:
    """Why `text` is not made of complete sentences, "" when it is.

    Complete: at least two words, the first letter a capital, and the last sentence ended by ".", "!" or "?"
    (closing quotes or brackets may follow) after a word that can end a sentence ("and.", "the." cannot);
    never a trailing ellipsis, which is how a cut answer ends.
    """
    text = text.strip()
    words = text.split()
    if len(words) < 2:
        return "fewer than two words"
    first = next((c for c in text if c.isalpha()), "")
    if not first.isupper():
        return "it does not start with a capital letter"
    body = text.rstrip(_CLOSERS)
    if body.endswith(("...", "\u2026")):
        return "it trails off with an ellipsis"
    if not body.endswith((".", "!", "?")):
        return f"it does not end a sentence (ends {text[-12:]!r})"
    last = body.rstrip(".!?").rstrip(_CLOSERS).split()[-1].lower() if body.rstrip(".!?").split() else ""
    if last in DANGLING:
        return f"it stops after {last!r}"
    return ""


def first_person(text: str) -> bool:
    """Whether the text speaks as I/me/my."""
    return FIRST_PERSON.search(text) is not None


MAX_ANSWER_CHARS = 20_000     # a whole answer is some 200 characters; far more is a model that did not stop


def parse_answer(raw: str) -> tuple[str, int]:
    """The feedback sentence and the rating from a raw answer.

    Raises:
        InvalidAnswer: not a JSON object with a non-empty "feedback" string and an integer "rating" in 1-5;
            also for feedback that is not complete sentences (`sentence_problem`: a cut answer is asked
            again, never shortened here) or longer than MAX_FEEDBACK_CHARS, for feedback with control
            characters or unpaired surrogates (it could not be stored), and for answers longer than
            MAX_ANSWER_CHARS (never parsed).
    """
    if len(raw) > MAX_ANSWER_CHARS:
        raise InvalidAnswer(f"answer has {len(raw)} characters; at most {MAX_ANSWER_CHARS} are read")
    text = raw.strip()
    if text.startswith("```"):       # some models fence JSON even when asked not to
        text = text.strip("`").removeprefix("json").strip()
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:     # ValueError: bad JSON, or an integer of over 4300 digits
        raise InvalidAnswer(f"not JSON: {str(exc).split(';')[0]}") from None
    if not isinstance(data, dict):
        raise InvalidAnswer(f"expected a JSON object, got {_json_type(data)}")
    feedback, rating = data.get("feedback"), data.get("rating")
    if not isinstance(feedback, str) or not feedback.strip():
        raise InvalidAnswer("'feedback' is missing or empty")
    feedback = " ".join(feedback.split())
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in feedback):
        raise InvalidAnswer("'feedback' holds control characters or unpaired surrogates")
    if isinstance(rating, bool) or not isinstance(rating, (int, float)) or rating not in RATINGS:
        raise InvalidAnswer(f"'rating' must be an integer 1-5, got {_brief(rating)}")
    if len(feedback) > MAX_FEEDBACK_CHARS:
        raise InvalidAnswer(f"'feedback' has {len(feedback)} characters; keep it under {MAX_FEEDBACK_WORDS} words")
    problem = sentence_problem(feedback)
    if problem:
        raise InvalidAnswer(f"'feedback' must be complete sentences: {problem}")
    return feedback, int(rating)


def _json_type(value: object) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "true/false", type(None): "null"}.get(
        type(value), "a number")


def _brief(value: object) -> str:
    """A JSON value for an error message: short, and never the repr of a deep array (which can overflow the stack)."""
    if isinstance(value, (dict, list)):
        return _json_type(value)
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return "a huge integer"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def expected_rating(tokens: Iterable[tuple[str, Sequence[tuple[str, float]]]]) -> float | None:
    """Expected rating from token log-probabilities.

    Args:
        tokens: the answer's tokens in order, each with its top alternatives as (token, logprob).

    Returns:
        E[rating] over 1-5 at the rating's digit (probabilities renormalised over the five digits),
        or None when the digit or its alternatives are not there.
    """
    seen = ""
    for token, alternatives in tokens:
        digit = token.strip()
        if '"rating"' in seen and len(digit) == 1 and digit in "12345":
            probs = dict.fromkeys(RATINGS, 0.0)
            for alt, logprob in alternatives:
                alt = alt.strip()
                if len(alt) == 1 and alt in "12345":
                    probs[int(alt)] += math.exp(logprob)
            total = sum(probs.values())
            return sum(k * p for k, p in probs.items()) / total if total > 0 else None
        seen += token
    return None
