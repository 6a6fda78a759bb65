"""A phone user walking the streets of the block and asking for images."""

from __future__ import annotations

from collections.abc import Generator, Hashable
from enum import Enum
from typing import TYPE_CHECKING, Protocol

import mesa
import simpy

from agents.feedback import Delivery, FeedbackService
from agents.persona import Persona
from agents.request import ImageRequest, RequestState

if TYPE_CHECKING:
    from random import Random

Node = Hashable


class UserState(Enum):
    """What the user is doing."""

    WALKING = "walking"
    PAUSED = "paused"


class Streets(Protocol):
    """The street geometry a user walks on."""

    def length_m(self, a: Node, b: Node) -> float:
        """Length of the street segment a-b, m."""
        ...

    def point_m(self, a: Node, b: Node, offset_m: float) -> tuple[float, float]:
        """Coordinates offset_m along the segment from a towards b, m."""
        ...


class Mobility(Protocol):
    """Chooses where a user goes next when it reaches an intersection."""

    def next_hop(self, user: MobileUser, rng: Random) -> tuple[Node, float]:
        """Next intersection to walk to, and the pause before leaving (s)."""
        ...


class MobileUser(mesa.Agent):
    """A pedestrian with a phone and a personality.

    The user is always on a street segment, `offset_m` past `here` on the way to
    `there`. It walks at `speed_mps`, turning at intersections as the mobility
    model says, and issues image requests as a Poisson process. When an image
    arrives, it looks at it for a think time and says what it thinks.

    Args:
        model: the model; provides `env`, `streets`, `mobility`, `prompts`,
            `base_station`, `slot_s` and `complete`.
        index: row of this user in the model's per-user arrays.
        persona: who the user is.
        speed_mps: walking speed, m/s.
        request_rate_per_s: mean requests per second.
        here: intersection the user starts from.
        there: neighbouring intersection it walks towards.
        feedback: the language model behind the persona; None: the user stays silent.
        think_s: range of the time the user takes to answer, s (uniform).
    """

    def __init__(self, model: mesa.Model, index: int, persona: Persona, speed_mps: float,
                 request_rate_per_s: float, here: Node, there: Node,
                 feedback: FeedbackService | None = None, think_s: tuple[float, float] = (0.0, 0.0)) -> None:
        super().__init__(model)
        self.index = index
        self.persona = persona
        self.feedback = feedback
        self.think_s = think_s
        self.speed_mps = speed_mps
        self.request_rate_per_s = request_rate_per_s
        self.prev: Node | None = None
        self.here = here
        self.there = there
        self.offset_m = 0.0
        self.pause_s = 0.0
        self.route: list[Node] = []   # planned intersections (random waypoint)
        self.state = UserState.WALKING
        self.received: list[ImageRequest] = []   # the last two images that reached the phone, oldest first
        self.recent_qoe = 0.5          # average of the user's last answers (weight 1/2 each), 0-1
        if request_rate_per_s > 0:
            model.env.process(self.requesting())

    @property
    def pos_m(self) -> tuple[float, float]:
        """Current coordinates, m."""
        return self.model.streets.point_m(self.here, self.there, self.offset_m)

    def move(self) -> None:
        """Walk for one slot along the streets, turning and pausing as the mobility model says."""
        streets, mobility = self.model.streets, self.model.mobility
        time_left_s = self.model.slot_s
        while time_left_s > 0:
            if self.pause_s > 0:
                waited = min(self.pause_s, time_left_s)
                self.pause_s -= waited
                time_left_s -= waited
                continue
            remaining_m = streets.length_m(self.here, self.there) - self.offset_m
            reach_m = self.speed_mps * time_left_s
            if reach_m < remaining_m:
                self.offset_m += reach_m
                break
            time_left_s -= remaining_m / self.speed_mps
            self.prev, self.here, self.offset_m = self.here, self.there, 0.0
            self.there, self.pause_s = mobility.next_hop(self, self.random)
        self.state = UserState.PAUSED if self.pause_s > 0 else UserState.WALKING

    def requesting(self) -> Generator[simpy.Event, None, None]:
        """SimPy process: exponential gaps between requests (a Poisson process)."""
        env, rng = self.model.env, self.model.rng
        while True:
            yield env.timeout(rng.exponential(1.0 / self.request_rate_per_s))
            if not self.model.closing:
                self.request_image()

    def request_image(self) -> ImageRequest:
        """Ask the base station for an image with a prompt from the catalog."""
        topic, prompt = self.model.prompts.draw(self.model.env.now, self.model.rng)
        request = ImageRequest(request_id=self.model.next_request_id(), user_id=self.unique_id,
                               persona=self.persona.summary(), prompt=prompt, topic=topic,
                               issued_s=self.model.env.now)
        self.model.base_station.receive(request)
        return request

    def receive_image(self, request: ImageRequest) -> None:
        """The finished image has arrived on the phone: look at it and answer, or stay silent."""
        self.received.append(request)
        # the live view colours a user by its latest rated image and a user seldom has two awaiting an answer,
        # so two suffice; each kept request holds its record (and pixels when rendered): about 3 kB profiled,
        # so keeping eight held some 240 MB at 10,000 users
        del self.received[:-2]
        if self.feedback is None:
            self.model.complete(request)
        else:
            self.model.env.process(self.give_feedback(request))

    def give_feedback(self, request: ImageRequest) -> Generator[simpy.Event, None, None]:
        """SimPy process: the answer is started at once and spoken after the think time."""
        delivery = Delivery(prompt=request.prompt, steps=request.steps, sharpness=request.sharpness,
                            fidelity=request.fidelity, wait_s=request.wait_s,
                            seen=request.seen)
        pending = self.feedback.submit(self.persona, delivery)
        yield self.model.env.timeout(self.model.rng.uniform(*self.think_s))
        request.feedback = pending.result()     # waits in wall-clock time only if the model is still busy
        request.feedback_s = self.model.env.now
        request.state = RequestState.RATED
        if request.qoe == request.qoe:      # a valid rating
            self.recent_qoe = 0.5 * self.recent_qoe + 0.5 * request.qoe
        self.model.complete(request, self.persona, delivery)
