"""The street grid of the block and how pedestrians choose their way through it.

Streets are a networkx graph: nodes are intersections with coordinates in
metres, edges are street segments with their length. Users only ever stand on
a segment, so they stay on the streets by construction.

Mobility models:
- Manhattan: at every intersection go straight with probability `p_straight`,
  otherwise turn left or right with equal chance; turn back only at a dead end
  (Bai et al., "IMPORTANT: a framework to systematically analyze the impact of
  mobility", INFOCOM 2003).
- Random waypoint on streets: pick a random intersection, walk the shortest
  path to it, pause for a uniform time in `pause_s`, repeat.
"""

from __future__ import annotations

import math
from functools import lru_cache
from random import Random
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

if TYPE_CHECKING:       # StreetsConfig loads without Mesa or networkx (`validate` stays fast)
    from agents.user import MobileUser, Node


class StreetsConfig(BaseModel):
    """Layout of the street grid and the pedestrians' mobility model."""

    # strict: a number is a number (true is not 1, 4.5 is not a count); no NaN or infinity
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    # the grid has (columns + 1) x (rows + 1) intersections, and a walker crosses about
    # speed * slot_s / block_m of them per slot: the bounds keep both within reach
    columns: int = Field(
        4, ge=1, le=200, description="Blocks from west to east, count (columns + 1 north-south streets).")
    rows: int = Field(
        4, ge=1, le=200, description="Blocks from south to north, count (rows + 1 east-west streets).")
    block_m: float = Field(100.0, ge=1, le=10_000, description="Length of one block's side, m.")
    mobility: Literal["manhattan", "random_waypoint"] = Field(
        "manhattan", description="How users choose their way: 'manhattan' or 'random_waypoint'.")
    p_straight: float = Field(0.5, ge=0, le=1, description="Manhattan: probability of going straight at an intersection.")
    pause_s: tuple[float, float] = Field(   # strict=False: a YAML list is a pair; its numbers stay strict
        (0.0, 30.0), strict=False, description="Random waypoint: range of the pause at each waypoint, s (uniform).")

    @field_validator("pause_s")
    @classmethod
    def _pause_range(cls, pause: tuple[float, float]) -> tuple[float, float]:
        low, high = pause
        if low < 0 or high < low:
            raise ValueError("must be [low, high] with 0 <= low <= high")
        return pause


class StreetGrid:
    """A Manhattan grid of streets: intersections (i, j) at (i * block_m, j * block_m)."""

    def __init__(self, cfg: StreetsConfig) -> None:
        self.cfg = cfg
        import networkx as nx

        self.graph = nx.grid_2d_graph(cfg.columns + 1, cfg.rows + 1)
        self.coords: dict[Node, np.ndarray] = {
            n: np.array([n[0] * cfg.block_m, n[1] * cfg.block_m]) for n in self.graph.nodes}
        for a, b in self.graph.edges:
            self.graph.edges[a, b]["length_m"] = float(np.linalg.norm(self.coords[a] - self.coords[b]))
        self.nodes: list[Node] = sorted(self.graph.nodes)
        self._edges: list[tuple[Node, Node]] = sorted(self.graph.edges)
        self._route = lru_cache(maxsize=4096)(self._shortest_route)

    @property
    def size_m(self) -> tuple[float, float]:
        """Width and height of the block, m."""
        return self.cfg.columns * self.cfg.block_m, self.cfg.rows * self.cfg.block_m

    def length_m(self, a: Node, b: Node) -> float:
        """Length of the street segment a-b, m."""
        return self.graph.edges[a, b]["length_m"]

    def point_m(self, a: Node, b: Node, offset_m: float) -> tuple[float, float]:
        """Coordinates offset_m along the segment from a towards b, m."""
        pa, pb = self.coords[a], self.coords[b]
        frac = offset_m / self.length_m(a, b)
        return float(pa[0] + (pb[0] - pa[0]) * frac), float(pa[1] + (pb[1] - pa[1]) * frac)

    def random_segment(self, rng: Random) -> tuple[Node, Node, float]:
        """A uniformly chosen point on the streets: (from, to, offset_m)."""
        a, b = rng.choice(self._edges)
        if rng.random() < 0.5:           # either heading along the segment
            a, b = b, a
        return a, b, rng.uniform(0.0, self.length_m(a, b))

    def route(self, a: Node, b: Node) -> list[Node]:
        """Shortest path from a to b, excluding a, as a list of intersections."""
        return list(self._route(a, b))

    def _shortest_route(self, a: Node, b: Node) -> tuple[Node, ...]:
        import networkx as nx

        return tuple(nx.shortest_path(self.graph, a, b, weight="length_m")[1:])


class ManhattanMobility:
    """Straight on with probability p_straight, else turn left or right; back only at a dead end."""

    def __init__(self, streets: StreetGrid) -> None:
        self.streets = streets

    def next_hop(self, user: MobileUser, rng: Random) -> tuple[Node, float]:
        """Next intersection after arriving at `user.here` from `user.prev`."""
        here, prev = user.here, user.prev
        options = [n for n in self.streets.graph.neighbors(here) if n != prev]
        if not options:
            return prev, 0.0
        if prev is None:
            return rng.choice(options), 0.0
        coords = self.streets.coords
        heading = coords[here] - coords[prev]
        straight = [n for n in options if _same_direction(coords[n] - coords[here], heading)]
        turns = [n for n in options if n not in straight]
        if straight and (not turns or rng.random() < self.streets.cfg.p_straight):
            return straight[0], 0.0
        return rng.choice(turns), 0.0


class RandomWaypointMobility:
    """Walk the shortest path to a random intersection, pause there, pick another."""

    def __init__(self, streets: StreetGrid) -> None:
        self.streets = streets

    def next_hop(self, user: MobileUser, rng: Random) -> tuple[Node, float]:
        """Next intersection on the user's route; at the waypoint, a new route and a pause."""
        pause_s = 0.0
        while not user.route:
            low, high = self.streets.cfg.pause_s
            pause_s = rng.uniform(low, high)
            user.route = self.streets.route(user.here, rng.choice(self.streets.nodes))
        return user.route.pop(0), pause_s


def _same_direction(u: np.ndarray, v: np.ndarray) -> bool:
    cos = float(np.dot(u, v)) / (np.linalg.norm(u) * np.linalg.norm(v))
    return math.isclose(cos, 1.0, abs_tol=1e-9)
