"""The live terminal view of a run: a map of the block, recent requests, and the state of the service.

`LiveView.observe(run)` is `run_scenario`'s per-slot observer. It keeps a few cheap running
figures every slot and, a few times a second, copies what the panels show into a `Snapshot`.
rich's `Live` redraws from the latest snapshot in its own thread, so a slot that waits for the
language model never freezes the view, and drawing never reads the model while it steps.

Fields that not every world produces (prompt clusters and shared denoising steps, absent with
`imagegen.share: false`; a learner's episode and losses) are read where they appear
(`ImageRequest.cluster`, `shared_steps`, a GPU server's `clusters_formed` /
`shared_steps_saved`, a learning policy's `episode` / `last_reward` / `losses`) and shown as "-" or
"not yet" while absent.
The layout is chosen at every frame for the terminal's size (`render`): the map only where it
fits beside the side panels, fewer panels when rows run short; the panels themselves
(`scenarios.panels`) leave table columns out rather than cut them and wrap feedback. Header and
footer come from one snapshot, so they always show the same slot.
Agents and the model never print; only this module, `scenarios.panels` (and the summary in
`report.py`) draw.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.text import Text

from scenarios.panels import (MIN_REQUEST_LINES, SIDE_MIN, WANT_REQUEST_LINES, Drawn, Panels, ServerState,
                              Snapshot, ViewLayout)

if TYPE_CHECKING:
    from agents.request import ImageRequest
    from world.city import CityBlock
    from world.runner import SlotRunner


class LiveView:
    """A rich `Live` view of a running `CityBlock`.

    Use as a context manager around `run_scenario(..., observer=view.observe, log=view.note)`.

    Args:
        console: where to draw (a terminal; tests pass a recording console).
        steps: slots the run will take.
        out: the run folder, shown in the header.
        refresh_per_second: redraws per second asked of rich (its thread sleeps 1/rate between frames).
        recent: most rows in the table of recent requests (fewer when the terminal is short).
        map_width: most characters across the map.
    """

    def __init__(self, console: Console, steps: int, out: str = "", refresh_per_second: float = 5.0,
                 recent: int = 12, map_width: int = 48) -> None:
        self.panels = Panels(console, map_width)
        self.steps = steps
        self.out = out
        self.refresh_per_second = refresh_per_second
        self.frames = 0                     # redraws so far (the benchmark counts them)
        self.message = "starting: building the block and the personas' language model"
        self._recent: deque[ImageRequest] = deque(maxlen=recent)
        self._qoe: list[float] = []
        self._invalid = self._failed = 0
        self._tally = dict.fromkeys(("issued", "delivered", "rated"), 0)
        self._layout: ViewLayout | None = None
        self._snapshot: Snapshot | None = None
        self._snap_every_s = 1.0 / refresh_per_second
        self._last_snap = -math.inf
        self._last_busy: dict[str, tuple[float, float]] = {}
        self._last_batch: dict[str, int] = {}
        self._started = time.perf_counter()
        self._live: Live | None = None
        self._noted = False         # a progress line came since the last snapshot

    # --- the run's side: cheap, every slot ------------------------------------------------------

    def observe(self, run: SlotRunner) -> None:
        """After each slot: keep the running figures; copy the panels' data a few times a second."""
        model, m = run.model, run.row
        rated = m["requests_rated"]
        self._qoe.append(m["total_qoe"] / rated if rated else math.nan)
        self._invalid += int(m["feedback_invalid"])
        self._failed += int(m["feedback_failed"])
        for key in self._tally:
            self._tally[key] += int(m[f"requests_{key}"])
        for r in model.completed:
            self._recent.appendleft(r)
            if r.server:
                self._last_batch[r.server] = r.batch_size
        now = time.perf_counter()
        if self._noted or now - self._last_snap >= self._snap_every_s or model.slot >= self.steps:
            self._last_snap, self._noted = now, False
            self._snapshot = self.snapshot(model, m)

    def note(self, line: str) -> None:
        """A message of the run (started, resumed, finishing): shown under the view's footer instead of
        scrolling the terminal; the next slot's snapshot is taken at once. The view counts slots and requests
        itself, from its snapshots, so the run's periodic progress lines are not for it."""
        self.message = line
        self._noted = True

    def snapshot(self, model: CityBlock, metrics: dict[str, float]) -> Snapshot:
        """Copy what the panels show from the model and the slot's row (call between slots)."""
        if self._layout is None:
            self._layout = layout_of(model)
        now = time.perf_counter()
        wall = now - self._started
        users = []
        for u in model.user_list:
            x, y = u.pos_m
            users.append((x, y, last_qoe(u.received)))
        servers = []
        for s in model.gpu_servers:
            busy = s.busy_time_s()
            before_busy, before_t = self._last_busy.get(s.name, (0.0, 0.0))
            span = model.env.now - before_t
            self._last_busy[s.name] = (busy, model.env.now)
            servers.append(ServerState(
                name=s.name, batches=s.batches, last_batch=self._last_batch.get(s.name, 0),
                utilisation=(busy - before_busy) / span if span > 0 else math.nan, queue=len(s.waiting),
                energy_j=s.energy_j, clusters_formed=_optional_int(s, "clusters_formed"),
                shared_steps_saved=_optional_int(s, "shared_steps_saved")))
        policy = model.base_station.policy
        learner = None
        if self._layout.learns:
            learner = {"updates": getattr(policy, "updates", None), "checkpoint": model.cfg.base_station.checkpoint}
        return Snapshot(slot=model.slot, time_s=float(model.env.now), wall_s=wall,
                        slots_per_s=model.slot / wall if wall > 0 else math.nan, users=tuple(users),
                        servers=tuple(servers), metrics=dict(metrics), requests=tuple(self._recent),
                        qoe=tuple(self._qoe), invalid=self._invalid, failed=self._failed, learner=learner,
                        tally={**self._tally, "in_flight": model.in_flight})

    # --- the drawing side: rich's thread, from the latest snapshot ------------------------------

    def __enter__(self) -> LiveView:
        self._started = time.perf_counter()
        self._live = Live(console=self.console, get_renderable=self.render, refresh_per_second=self.refresh_per_second,
                          redirect_stdout=False, redirect_stderr=False)
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            if self._snapshot is None:      # failed before the first slot: leave only the error on screen
                self._live.transient = True
            self._live.__exit__(*exc)       # draws the last frame and leaves it on screen
            self._live = None

    def render(self) -> RenderableType:
        """The whole view from the latest snapshot, laid out for the terminal's size right now."""
        self.frames += 1
        snap, lay = self._snapshot, self._layout
        if snap is None or lay is None:
            return Panel(Text(self.message), title="aigcsim", border_style="blue")
        width, height = self.console.size
        height -= 1                     # the line under the frame holds the cursor
        header, footer = self.header(snap, lay, width), self.panels.draw(self.footer(snap), width)
        room = height - 1 - footer.height
        # the richest top that leaves the recent requests a few rows, else the richest that leaves them any
        # (drawn one by one, richest first: a large terminal takes the first)
        chosen: Drawn | None = None
        for top in self._tops(snap, lay, width):
            lines = 0 if top is None else top.height
            if room - lines >= WANT_REQUEST_LINES:
                chosen = top
                break
            if chosen is None and (room - lines >= MIN_REQUEST_LINES or top is None):
                chosen = top
        parts: list[RenderableType] = [header]
        if chosen is not None:
            parts.append(chosen)
            room -= chosen.height
        if room >= MIN_REQUEST_LINES - 1:
            parts.append(self.panels.requests_panel(snap, width, room))
        return Group(*parts, footer)

    @property
    def console(self) -> Console:
        """Where the view draws (and measures its panels)."""
        return self.panels.console

    @console.setter
    def console(self, console: Console) -> None:
        self.panels.console = console

    def _tops(self, snap: Snapshot, lay: ViewLayout, width: int) -> Iterator[Drawn | None]:
        """What goes above the recent requests, richest first, each drawn once (the panels it shares with a
        richer one too); the first that leaves the requests room is shown."""
        draw = self.panels.draw
        across = self.panels._across(lay)
        map_w = lay.columns * across + 1 + 4
        side_w = width - map_w - 1
        if side_w >= SIDE_MIN:
            side = Drawn.stack(draw(self.panels.gpu_panel(snap, side_w), side_w),
                               draw(self.panels.learner_panel(snap, lay, side_w), side_w),
                               draw(self.panels.llm_panel(snap, lay), side_w))
            for down in range(max(2, across // 2), 1, -1):
                yield draw(self.panels.map_panel(snap, lay, across, down), map_w).beside(side)
        gpu = draw(self.panels.gpu_panel(snap, width), width)
        half = (width - 1) // 2
        if half >= SIDE_MIN // 2:
            learner = draw(self.panels.learner_panel(snap, lay, width - half - 1), width - half - 1)
            yield Drawn.stack(gpu, learner.beside(draw(self.panels.llm_panel(snap, lay), half)))
        yield Drawn.stack(gpu, draw(self.panels.learner_panel(snap, lay, width), width))
        yield gpu
        yield None

    def header(self, snap: Snapshot, lay: ViewLayout, width: int = 1_000) -> Text:
        """One line: the scenario and the clock; less important items are left out when it would not fit."""
        slot = (f"{snap.slot}/{self.steps}" if snap.slot <= self.steps
                else f"{self.steps}/{self.steps} +{snap.slot - self.steps} finishing")
        items = [  # (priority: lower stays longer, text pieces)
            (0, [("aigcsim ", "bold"), (lay.name, "bold cyan")]),
            (3, [f"  seed {lay.seed}"]),
            (2, [f"  policy {lay.policy}"]),
            (0, ["  |  ", ("slot ", "grey62"), (slot, "bold")]),
            (1, [("  clock ", "grey62"), (f"{snap.time_s:,.1f} s", "bold")]),
            (4, [("  speed ", "grey62"), (f"{snap.slots_per_s:,.1f} slots/s", "bold")]),
            (4, [("  wall ", "grey62"), f"{time.perf_counter() - self._started:,.0f} s"]),
            (5, [(f"  |  {self.out}", "grey50")] if self.out else []),
        ]
        for keep in range(5, -1, -1):
            text = Text.assemble(*(piece for rank, pieces in items if rank <= keep for piece in pieces))
            if text.cell_len <= width:
                break
        text.no_wrap = True
        return text

    def footer(self, snap: Snapshot) -> Text:
        """The counts of the snapshot's slot (the header's), then the run's latest message; wrapped, not cut."""
        t = snap.tally
        rated = [q for q in snap.qoe if not math.isnan(q)]
        text = Text.assemble(
            (f"slot {min(snap.slot, self.steps)}/{self.steps}", "bold"),
            f": issued {t.get('issued', 0)}, delivered {t.get('delivered', 0)}, rated {t.get('rated', 0)}, "
            f"in flight {t.get('in_flight', 0)}",
            f", mean QoE {sum(rated) / len(rated):.2f}" if rated else "")
        text.append("\n" + self.message, style="grey50")
        return text


def layout_of(model: CityBlock) -> ViewLayout:
    """The fixed parts of the view, read once."""
    cfg = model.cfg
    policy = model.base_station.policy
    return ViewLayout(name=cfg.name, seed=model.seed, policy=cfg.base_station.policy,
                  learns=callable(getattr(policy, "update", None)), feedback_mode=cfg.feedback.mode,
                  columns=cfg.streets.columns, rows=cfg.streets.rows, block_m=cfg.streets.block_m,
                  station_m=tuple(model.base_station.position_m),
                  servers=[(s.name, tuple(s.position_m)) for s in model.gpu_servers])


def last_qoe(received: Sequence[ImageRequest]) -> float:
    """QoE of the user's most recent rated image; NaN when there is none."""
    for r in reversed(received):
        if r.feedback is not None:
            return r.qoe
    return math.nan


def _optional_int(obj: object, name: str) -> int | None:
    value = getattr(obj, name, None)
    return None if value is None else int(value)


