"""The street grid and the two mobility models: users stay on the streets and walk as told."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from random import Random
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from policies.heuristics import FixedPolicy
from tests.shipped import shipped
from world.city import CityBlock
from world.streets import StreetGrid, StreetsConfig

BASE = shipped()


def walkers(streets: dict[str, Any], users: dict[str, Any] | None = None, seed: int = 42,
            slot_s: float = 1.0) -> CityBlock:
    """A city block of pedestrians who never ask for images (only mobility runs)."""
    changes = {"slot_s": slot_s, "streets": streets, "users": {"request_rate_per_s": 0.0, **(users or {})},
               "base_station": {"position_m": (0.0, 0.0)}}      # a corner lies inside any grid
    changes["gpu_servers"] = [{**BASE.gpu_servers[0].model_dump(), "position_m": (0.0, 0.0)}]
    return CityBlock(shipped(changes), FixedPolicy(), seed=seed)


class HopLog:
    """Records every decision of the model's real mobility model, per user."""

    def __init__(self, model: CityBlock) -> None:
        self.next_hop = model.mobility.next_hop
        self.hops: dict[int, list[tuple[Any, Any, Any, float]]] = defaultdict(list)
        model.mobility.next_hop = self          # type: ignore[method-assign]

    def __call__(self, user: Any, rng: Random) -> tuple[Any, float]:
        there, pause = self.next_hop(user, rng)
        self.hops[user.index].append((user.prev, user.here, there, pause))
        return there, pause


def assert_on_streets(model: CityBlock) -> None:
    grid = model.streets
    block = grid.cfg.block_m
    width, height = grid.size_m
    for u in model.user_list:
        assert grid.graph.has_edge(u.here, u.there), (u.here, u.there)
        assert 0.0 <= u.offset_m <= grid.length_m(u.here, u.there)
        x, y = u.pos_m
        assert -1e-9 <= x <= width + 1e-9 and -1e-9 <= y <= height + 1e-9
        on_ns_street = math.isclose(x / block, round(x / block), abs_tol=1e-9)
        on_ew_street = math.isclose(y / block, round(y / block), abs_tol=1e-9)
        assert on_ns_street or on_ew_street, (x, y)
        # offset_m is the distance walked from `here` along the segment
        assert math.dist((x, y), grid.coords[u.here]) == pytest.approx(u.offset_m, abs=1e-9)


# --- the grid -----------------------------------------------------------------

def test_grid_geometry() -> None:
    grid = StreetGrid(StreetsConfig(columns=3, rows=2, block_m=50.0))
    assert grid.graph.number_of_nodes() == 4 * 3
    assert grid.graph.number_of_edges() == 3 * 3 + 4 * 2     # east-west + north-south segments
    assert grid.size_m == (150.0, 100.0)
    assert grid.nodes[0] == (0, 0) and grid.nodes[-1] == (3, 2)
    np.testing.assert_array_equal(grid.coords[(3, 2)], [150.0, 100.0])
    assert all(grid.length_m(a, b) == 50.0 for a, b in grid.graph.edges)
    assert grid.point_m((1, 1), (2, 1), 20.0) == pytest.approx((70.0, 50.0))
    assert grid.point_m((2, 1), (1, 1), 20.0) == pytest.approx((80.0, 50.0))
    assert grid.point_m((1, 2), (1, 1), 50.0) == pytest.approx((50.0, 50.0))


def test_route_is_a_shortest_street_path() -> None:
    grid = StreetGrid(StreetsConfig(columns=4, rows=4))
    route = grid.route((0, 0), (3, 2))
    assert len(route) == 5 and route[-1] == (3, 2)
    assert (0, 0) not in route
    for a, b in zip([(0, 0), *route], route):
        assert grid.graph.has_edge(a, b)
    assert grid.route((2, 2), (2, 2)) == []
    route.pop()                                      # callers pop hops; the cache must not change
    assert len(grid.route((0, 0), (3, 2))) == 5


def test_random_segment_is_uniform_over_the_streets() -> None:
    grid = StreetGrid(StreetsConfig(columns=2, rows=2, block_m=10.0))
    rng = Random(3)
    counts: Counter[frozenset[Any]] = Counter()
    for _ in range(6000):
        a, b, offset = grid.random_segment(rng)
        assert grid.graph.has_edge(a, b)
        assert 0.0 <= offset <= 10.0
        counts[frozenset((a, b))] += 1
    assert len(counts) == grid.graph.number_of_edges() == 12
    assert all(abs(n - 500) < 100 for n in counts.values())


def test_random_segment_starts_users_in_every_direction() -> None:
    grid = StreetGrid(StreetsConfig())
    rng = Random(1)
    headings = set()
    for _ in range(400):
        a, b, _ = grid.random_segment(rng)
        headings.add((b[0] - a[0], b[1] - a[1]))
    assert headings == {(1, 0), (-1, 0), (0, 1), (0, -1)}


def test_streets_config_validates() -> None:
    with pytest.raises(ValidationError, match="pause_s"):
        StreetsConfig(pause_s=(10.0, 5.0))
    with pytest.raises(ValidationError, match="pause_s"):
        StreetsConfig(pause_s=(-1.0, 5.0))
    with pytest.raises(ValidationError, match="p_straight"):
        StreetsConfig(p_straight=1.5)
    with pytest.raises(ValidationError, match="columns"):
        StreetsConfig(columns=0)
    with pytest.raises(ValidationError, match="mobility"):
        StreetsConfig(mobility="teleport")


# --- users stay on the streets --------------------------------------------------

@pytest.mark.parametrize("mobility", ["manhattan", "random_waypoint"])
def test_users_stay_on_streets(mobility: str) -> None:
    model = walkers({"mobility": mobility, "pause_s": [0.0, 5.0]},
                    {"count": 25, "speed_mps": [1.0, 15.0]})   # fast walkers cross many blocks
    assert_on_streets(model)
    start = model.positions_m().copy()
    for _ in range(150):
        model.step()
        assert_on_streets(model)
    assert np.all(np.linalg.norm(model.positions_m() - start, axis=1) >= 0)
    assert len({u.here for u in model.user_list}) > 5           # they spread over the block
    assert model.env.now == 150 * model.slot_s


def test_users_stay_on_streets_of_a_single_block() -> None:
    model = walkers({"columns": 1, "rows": 1, "block_m": 30.0}, {"count": 6, "speed_mps": [5.0, 40.0]})
    for _ in range(60):
        model.step()
        assert_on_streets(model)


# --- Manhattan -----------------------------------------------------------------

def heading(grid: StreetGrid, a: Any, b: Any) -> np.ndarray:
    return grid.coords[b] - grid.coords[a]


def classify(grid: StreetGrid, prev: Any, here: Any, there: Any) -> str:
    before, after = heading(grid, prev, here), heading(grid, here, there)
    cross = before[0] * after[1] - before[1] * after[0]
    if cross > 0:
        return "left"
    if cross < 0:
        return "right"
    return "straight" if np.dot(before, after) > 0 else "back"


@pytest.mark.parametrize(("p_straight", "expected"), [(0.0, 0.0), (0.5, 0.5), (1.0, 1.0)])
def test_manhattan_turns_only_at_intersections_and_never_back(p_straight: float, expected: float) -> None:
    model = walkers({"mobility": "manhattan", "p_straight": p_straight},
                    {"count": 40, "speed_mps": [40.0, 80.0]})
    log = HopLog(model)
    for _ in range(100):
        model.step()
    grid = model.streets
    moves: Counter[str] = Counter()
    hops = 0
    for user_hops in log.hops.values():
        for prev, here, there, pause in user_hops:
            hops += 1
            assert pause == 0.0
            assert grid.graph.has_edge(here, there)
            assert there != prev                      # no dead ends on a grid: never a U-turn
            if grid.graph.degree(here) == 4:          # interior intersection: all choices open
                moves[classify(grid, prev, here, there)] += 1
    interior = sum(moves.values())
    assert hops > 2000
    assert moves["back"] == 0
    if p_straight == 1.0:
        # straight across the block, then round its edge for ever: few interior crossings, all straight
        assert interior >= 10 and moves["straight"] == interior
        return
    assert interior > 600
    assert moves["straight"] / interior == pytest.approx(expected, abs=0.06)
    assert moves["left"] / (moves["left"] + moves["right"]) == pytest.approx(0.5, abs=0.08)


def test_manhattan_hops_follow_on_from_each_other() -> None:
    model = walkers({"mobility": "manhattan"}, {"count": 10, "speed_mps": [20.0, 40.0]})
    log = HopLog(model)
    for _ in range(50):
        model.step()
    for user in model.user_list:
        hops = log.hops[user.index]
        assert len(hops) > 5
        for (_, here, there, _), (prev, nxt_here, _, _) in zip(hops, hops[1:]):
            assert (prev, nxt_here) == (here, there)   # the user walked the whole segment it chose


def test_manhattan_on_a_single_block_walks_around_it() -> None:
    model = walkers({"columns": 1, "rows": 1, "mobility": "manhattan"}, {"count": 5, "speed_mps": [30.0, 60.0]})
    log = HopLog(model)
    for _ in range(40):
        model.step()
    grid = model.streets
    turns = [classify(grid, prev, here, there) for hops in log.hops.values() for prev, here, there, _ in hops]
    assert len(turns) > 60      # 5 users x 40 s x 30-60 m/s over 100 m sides: about 90 corners
    # every corner has two streets: the only choice other than back is a 90-degree turn,
    # and a user keeps circling the block the same way round
    for hops in log.hops.values():
        sides = {classify(grid, prev, here, there) for prev, here, there, _ in hops}
        assert sides in ({"left"}, {"right"})


def test_manhattan_turns_back_at_a_dead_end() -> None:
    model = walkers({"columns": 2, "rows": 1, "mobility": "manhattan"}, {"count": 1})
    grid = model.streets
    grid.graph.remove_edge((1, 0), (2, 0))       # (2, 0) now only connects to (2, 1)
    user = model.user_list[0]
    user.prev, user.here = (2, 1), (2, 0)
    assert model.mobility.next_hop(user, Random(0)) == ((2, 1), 0.0)
    user.prev, user.here = (0, 0), (1, 0)        # a corner now: turn north, never back
    assert all(model.mobility.next_hop(user, Random(s))[0] == (1, 1) for s in range(20))


# --- how far users walk ------------------------------------------------------------

def walked_m(grid: StreetGrid, before: tuple[Any, Any, float], hops: list[tuple[Any, Any, Any, float]],
             after: tuple[Any, Any, float]) -> float:
    """Street distance from `before` to `after` through the recorded hops."""
    here, there, offset = before
    if not hops:
        assert (here, there) == after[:2]
        return after[2] - offset
    distance = grid.length_m(here, there) - offset
    for _, hop_here, hop_there, _ in hops[:-1]:
        distance += grid.length_m(hop_here, hop_there)
    _, last_here, last_there, _ = hops[-1]
    assert (last_here, last_there) == after[:2]
    return distance + after[2]


@pytest.mark.parametrize(("mobility", "slot_s"), [("manhattan", 1.0), ("random_waypoint", 1.0),
                                               ("manhattan", 2.5), ("random_waypoint", 0.4)])
def test_distance_per_slot_is_speed_times_walking_time(mobility: str, slot_s: float) -> None:
    model = walkers({"mobility": mobility, "block_m": 40.0, "pause_s": [0.5, 4.0]},
                    {"count": 15, "speed_mps": [3.0, 70.0]}, slot_s=slot_s)
    log = HopLog(model)
    grid = model.streets
    paused_total = 0.0
    for _ in range(60):
        before = {u.index: (u.here, u.there, u.offset_m, u.pause_s) for u in model.user_list}
        log.hops.clear()
        model.step()
        for u in model.user_list:
            here, there, offset, pause_before = before[u.index]
            hops = log.hops[u.index]
            paused = pause_before + sum(h[3] for h in hops) - u.pause_s
            distance = walked_m(grid, (here, there, offset), hops, (u.here, u.there, u.offset_m))
            assert distance == pytest.approx(u.speed_mps * (model.slot_s - paused), abs=1e-6)
            assert 0.0 <= paused <= model.slot_s + 1e-12
            if mobility == "manhattan":
                assert paused == 0.0
                assert distance == pytest.approx(u.speed_mps * model.slot_s, abs=1e-6)
            paused_total += paused
    if mobility == "random_waypoint":
        assert paused_total > 4.0       # pauses happened, so the test saw them respected


def test_random_waypoint_pause_holds_user_still() -> None:
    model = walkers({"mobility": "random_waypoint", "block_m": 20.0, "pause_s": [2.5, 6.0]},
                    {"count": 12, "speed_mps": [10.0, 30.0]})
    still = 0
    for _ in range(80):
        before = {u.index: (u.pos_m, u.pause_s) for u in model.user_list}
        model.step()
        for u in model.user_list:
            pos, pause = before[u.index]
            if pause >= model.slot_s:          # the whole slot is pause
                still += 1
                assert u.pos_m == pos
                assert u.pause_s == pytest.approx(pause - model.slot_s)
            assert (u.state.value == "paused") == (u.pause_s > 0)
    assert still > 20


def test_random_waypoint_walks_shortest_paths_between_waypoints() -> None:
    model = walkers({"mobility": "random_waypoint", "block_m": 25.0, "pause_s": [0.2, 0.5]},
                    {"count": 10, "speed_mps": [30.0, 60.0]})
    log = HopLog(model)
    for _ in range(60):
        model.step()
    legs = 0
    for hops in log.hops.values():
        waypoints = [i for i, h in enumerate(hops) if h[3] > 0]    # a pause marks arrival at a waypoint
        for start, end in zip(waypoints, waypoints[1:]):
            a, b = hops[start][1], hops[end][1]
            blocks = abs(a[0] - b[0]) + abs(a[1] - b[1])
            assert end - start == blocks              # one hop per block: no detours
            legs += 1
        for _, here, there, _ in hops:
            assert model.streets.graph.has_edge(here, there)
    assert legs > 30
