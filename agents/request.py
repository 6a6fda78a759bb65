"""One image request, recorded end to end."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any

from agents.feedback import Feedback


_NOT_RECORDED = ("image", "decision", "feedback")    # ImageRequest fields that are not one table cell
_SERVED = ("cluster", "shared_steps", "seen")        # what a sharing engine adds: the last columns of the table


class RequestState(Enum):
    """Where a request is in its life."""

    WAITING = "waiting"          # issued, not yet allocated by the base station
    QUEUED = "queued"            # allocated, waiting for a GPU
    DENOISING = "denoising"      # on the GPU
    TRANSMITTING = "transmitting"
    FINISHING = "finishing"      # the phone runs its own steps
    DELIVERED = "delivered"      # the image is on the phone; the user is looking at it
    RATED = "rated"              # the user has answered


@dataclass
class ImageRequest:
    """A user's request for an image and everything measured about it.

    Times are simulated seconds on the model's clock; NaN until reached.
    """

    request_id: int
    user_id: int
    persona: str
    prompt: str
    topic: str
    issued_s: float
    state: RequestState = RequestState.WAITING
    allocated_s: float = float("nan")
    server: str = ""
    server_steps: int = 0
    device_steps: int = 0
    power_w: float = float("nan")
    batch_size: int = 0
    started_s: float = float("nan")       # first server step began
    finished_s: float = float("nan")      # last server step done
    delivered_s: float = float("nan")     # image complete on the phone
    distance_m: float = float("nan")
    gain: float = float("nan")
    rate_bps: float = float("nan")
    tx_s: float = float("nan")
    tx_energy_j: float = float("nan")
    server_energy_j: float = 0.0
    device_energy_j: float = 0.0
    energy_penalty: float = 0.0           # its share of the penalties of the slots its energy went over budget in
    sharpness: float = float("nan")       # of the delivered image, 0-1
    fidelity: float = float("nan")        # match to the prompt, 0-1
    feedback_s: float = float("nan")      # the user answered
    payload_bits: float = float("nan")    # what the radio carries: NaN = the finished image's size
    feedback: Feedback | None = None
    image: Any = field(default=None, repr=False)     # the delivered pixels (H x W x 3 uint8) when rendered for real
    decision: Any = field(default=None, repr=False)  # (observation row, action row) the base station decided on
    # set by a GPU engine that shares steps between similar prompts (empty otherwise)
    cluster: str = ""                     # "<batch>.<group>" of the requests that shared, "solo" when none did
    shared_steps: int | None = None       # steps run once for its cluster
    seen: str = ""                        # what the judge saw in the delivered image (real rendering), in words

    @property
    def steps(self) -> int:
        """Total denoising steps, server and phone."""
        return self.server_steps + self.device_steps

    @property
    def wait_s(self) -> float:
        """From issuing the request to holding the finished image, s."""
        return self.delivered_s - self.issued_s

    @property
    def energy_j(self) -> float:
        """What serving it cost the operator (its share of the GPU batches + transmission), J."""
        return self.server_energy_j + (0.0 if self.tx_energy_j != self.tx_energy_j else self.tx_energy_j)

    @property
    def qoe(self) -> float:
        """QoE in [0, 1] from the user's rating; NaN without a valid rating."""
        qoe = self.feedback.qoe if self.feedback else None
        return float("nan") if qoe is None else qoe

    def as_record(self) -> dict[str, float | int | str | bool | None]:
        """Flat row for the run's requests table."""
        # the scalar fields by hand: asdict would deep-copy every value, a fifth of a profiled run's time
        row = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _NOT_RECORDED + _SERVED}
        row["state"] = self.state.value
        row["steps"] = self.steps
        row["wait_s"] = self.wait_s
        row["qoe"] = self.qoe
        fb = self.feedback
        row.update({
            "rating": fb.rating if fb else None,
            "expected_rating": fb.expected_rating if fb else None,
            "feedback_text": fb.text if fb else "",
            "feedback_valid": fb.valid if fb else None,
            "feedback_cached": fb.cached if fb else None,
            "feedback_backend": fb.backend if fb else "",
            "feedback_latency_s": fb.latency_s if fb else None,
            "feedback_error": fb.error if fb else "",
            "feedback_failed": fb.failed if fb else None,
        })
        row.update({name: getattr(self, name) for name in _SERVED})
        return row
