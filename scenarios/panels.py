"""The live view's panels, drawn from a `Snapshot`: the map, the GPU servers, the learner, the language
model and the recent requests.

Each panel fits the width it is given: table columns are left out by importance (`scenarios.cells.fit_columns`),
never cut, so no figure is shown half; feedback sentences wrap. `LiveView` (`scenarios.live`) takes the
snapshots and chooses which panels fit the terminal.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.panel import Panel
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from scenarios.cells import (FEEDBACK_MIN, GPU_COLUMNS, GPU_PRIORITY, NONE, QOE_BANDS, REQUEST_COLUMNS, REQUEST_PRIORITY,
                             fit_columns, pct, qoe_style, request_cells)

if TYPE_CHECKING:
    from agents.request import ImageRequest


USER = "\u25cf"          # a user with a rating (coloured by its last QoE)
USER_UNRATED = "\u25cb"  # a user without a rating yet
STATION = "\u25b2"
SERVER = "\u25a0"
SPARKS = "\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588"
STREET_STYLE = "grey35"
SIDE_MIN = 56           # least width of the panels beside the map
MIN_REQUEST_LINES = 5   # the recent-requests panel's borders, header and two lines
WANT_REQUEST_LINES = 11  # ... and room for about four requests, when the terminal allows


def sparkline(values: Sequence[float], width: int = 40) -> str:
    """QoE in [0, 1] as block characters, `width` buckets over the whole sequence; blank where no rating."""
    if not values:
        return ""
    per = max(1, math.ceil(len(values) / width))
    out = []
    for i in range(0, len(values), per):
        chunk = [v for v in values[i:i + per] if not math.isnan(v)]
        if not chunk:
            out.append(" ")
            continue
        mean = min(1.0, max(0.0, sum(chunk) / len(chunk)))
        out.append(SPARKS[min(len(SPARKS) - 1, int(mean * len(SPARKS)))])
    return "".join(out)


@dataclass(frozen=True)
class ServerState:
    """One GPU server as the panel shows it."""

    name: str
    batches: int
    last_batch: int
    utilisation: float          # share of the time since the last snapshot the GPU was busy
    queue: int
    energy_j: float
    clusters_formed: int | None
    shared_steps_saved: int | None


@dataclass(frozen=True)
class Snapshot:
    """What the panels show, copied from the model between two slots."""

    slot: int
    time_s: float
    wall_s: float
    slots_per_s: float
    users: tuple[tuple[float, float, float], ...]     # x_m, y_m, last QoE (NaN: no rating yet)
    servers: tuple[ServerState, ...]
    metrics: Mapping[str, float]
    requests: tuple[ImageRequest, ...]                 # most recent first; finished, so no longer changing
    qoe: tuple[float, ...]                             # mean QoE per slot (NaN: nothing rated)
    invalid: int
    failed: int
    learner: Mapping[str, Any] | None
    tally: Mapping[str, int] = field(default_factory=dict)     # issued, delivered, rated since the start


@dataclass
class ViewLayout:
    """What does not change during a run: the block's geometry and the service's fixed parts."""

    name: str
    seed: int
    policy: str
    learns: bool
    feedback_mode: str
    columns: int
    rows: int
    block_m: float
    station_m: tuple[float, float]
    servers: list[tuple[str, tuple[float, float]]] = field(default_factory=list)


class Drawn:
    """Lines rich has drawn, shown as they are: the view lays out by drawing each part once, and shows what
    it measured (drawing a part to count its lines and again to show it doubled the view's cost).

    Args:
        lines: the lines, each padded to `width` cells.
        width: cells across.
    """

    def __init__(self, lines: list[list[Segment]], width: int) -> None:
        self.lines = lines
        self.width = width

    @property
    def height(self) -> int:
        return len(self.lines)

    def beside(self, right: Drawn, gap: int = 1) -> Drawn:
        """This and `right` side by side, `gap` blanks apart; the shorter is filled with blank lines."""
        blank_left, blank_right = [Segment(" " * self.width)], [Segment(" " * right.width)]
        lines = [[*(self.lines[k] if k < self.height else blank_left), Segment(" " * gap),
                  *(right.lines[k] if k < right.height else blank_right)]
                 for k in range(max(self.height, right.height))]
        return Drawn(lines, self.width + gap + right.width)

    @staticmethod
    def stack(*parts: Drawn) -> Drawn:
        """The parts one under the other."""
        return Drawn([line for part in parts for line in part.lines], max(part.width for part in parts))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for line in self.lines:
            yield from line
            yield Segment.line()


class Panels:
    """Draws the panels for one console (which measures how many lines a panel takes).

    Args:
        console: the console the view draws on.
        map_width: most characters across the map.
    """

    def __init__(self, console: Console, map_width: int = 48) -> None:
        self.console = console
        self.map_width = map_width
        self._base: dict[tuple[int, int], list[list[tuple[str, str]]]] = {}

    def draw(self, renderable: RenderableType, width: int) -> Drawn:
        """`renderable` drawn `width` characters wide: its lines, counted and kept to be shown as they are."""
        return Drawn(self.console.render_lines(renderable, self.console.options.update(width=width, height=None)),
                     width)

    def _across(self, lay: ViewLayout) -> int:
        """Characters per block across the map."""
        return max(4, min(12, (self.map_width - 1) // lay.columns))

    def _streets(self, lay: ViewLayout, across: int, down: int) -> list[list[tuple[str, str]]]:
        if (across, down) not in self._base:
            width, height = lay.columns * across + 1, lay.rows * down + 1
            rows = []
            for j in range(height):
                row = []
                for i in range(width):
                    on_x, on_y = i % across == 0, j % down == 0
                    char = "\u253c" if on_x and on_y else "\u2502" if on_x else "\u2500" if on_y else " "
                    row.append((char, STREET_STYLE))
                rows.append(row)
            self._base[across, down] = rows
        return [list(r) for r in self._base[across, down]]

    def map_panel(self, snap: Snapshot, lay: ViewLayout, across: int | None = None, down: int | None = None) -> Panel:
        """The block: streets, base station, servers, users coloured by their last QoE."""
        across = across or self._across(lay)
        down = down or max(2, across // 2)
        width, height = lay.columns * across + 1, lay.rows * down + 1
        grid = self._streets(lay, across, down)

        def put(x_m: float, y_m: float, char: str, style: str) -> None:
            i = min(width - 1, max(0, round(x_m / lay.block_m * across)))
            j = min(height - 1, max(0, height - 1 - round(y_m / lay.block_m * down)))
            grid[j][i] = (char, style)

        for x, y, qoe in snap.users:
            put(x, y, USER_UNRATED if math.isnan(qoe) else USER, qoe_style(qoe))
        for k, (_, (x, y)) in enumerate(lay.servers):
            put(x, y, SERVER if len(lay.servers) == 1 else str(k + 1), "bold cyan")
        put(*lay.station_m, STATION, "bold magenta")
        text = Text()
        for j, row in enumerate(grid):
            if j:
                text.append("\n")
            run_style, run = row[0][1], []
            for char, style in row:
                if style != run_style:
                    text.append("".join(run), run_style)
                    run_style, run = style, []
                run.append(char)
            text.append("".join(run), run_style)
        return Panel(Group(text, self.legend(lay)), title="City block", border_style="blue", width=width + 4)

    def legend(self, lay: ViewLayout) -> Text:
        text = Text()
        text.append(f"{STATION}", "bold magenta")
        text.append(" base station  ")
        for k, (name, _) in enumerate(lay.servers):
            text.append(SERVER if len(lay.servers) == 1 else str(k + 1), "bold cyan")
            text.append(f" {name}  ")
        text.append("\nusers by last QoE: ")
        for (low, style), label in zip(QOE_BANDS, (">=0.75", ">=0.5", ">=0.25", "<0.25")):
            text.append(USER, style)
            text.append(f" {label} ")
        text.append(USER_UNRATED, qoe_style(math.nan))
        text.append(" silent" if lay.feedback_mode == "silent" else " no rating yet")
        return text

    def requests_panel(self, snap: Snapshot, width: int = 1_000, height: int = 1_000) -> Panel:
        """The most recent finished requests, with what each user said, in `width` x `height` characters:
        columns that do not fit are left out (never cut), feedback is wrapped, older rows go first."""
        rows = [request_cells(r) for r in snap.requests]
        shown = fit_columns(REQUEST_COLUMNS, rows, width - 4, REQUEST_PRIORITY, max(FEEDBACK_MIN, width // 3))

        table = Table(expand=True, box=None, padding=(0, 1), header_style="bold")
        for _, name, justify, w in shown:
            if name == "feedback":
                table.add_column(name, ratio=1, overflow="fold")
            else:
                table.add_column(name, justify=justify, width=w, no_wrap=True,
                                 overflow="ellipsis" if name == "prompt" else "fold")
        # every column but feedback is as wide as its widest cell and stays on one line (fit_columns), so a
        # row is as tall as its feedback wrapped in what the others leave (each column is padded 1 + 1)
        feedback_w = width - 4 - sum(w + 2 for _, name, _, w in shown if name != "feedback") - 2
        room = height - 3                  # the panel's borders and the table's header
        for cells in rows:
            said = cells[-1] if isinstance(cells[-1], Text) else Text(cells[-1])
            room -= len(said.wrap(self.console, feedback_w, overflow="fold"))
            if room < 0 and table.row_count:
                break
            table.add_row(*(cells[k] for k, *_ in shown))
        if not rows:        # the wide, wrapping feedback column says so
            table.add_row(*[Text("no finished request yet", style="grey62") if name == "feedback" else ""
                            for _, name, *_ in shown])
        return Panel(table, title="Recent requests", subtitle="steps: GPU+phone", subtitle_align="right",
                     border_style="blue")

    def gpu_panel(self, snap: Snapshot, width: int = 1_000) -> Panel:
        rows = [[s.name, f"{s.batches}", f"{s.last_batch or NONE}", pct(s.utilisation), f"{s.queue}",
                 f"{s.energy_j / 1e3:,.1f} kJ", NONE if s.clusters_formed is None else f"{s.clusters_formed}",
                 NONE if s.shared_steps_saved is None else f"{s.shared_steps_saved}"] for s in snap.servers]
        shown = fit_columns(GPU_COLUMNS, rows, width - 4, GPU_PRIORITY)
        table = Table(box=None, padding=(0, 1), header_style="bold", expand=True)
        for _, name, justify, w in shown:
            table.add_column(name, justify=justify, no_wrap=True, min_width=w)
        for row in rows:
            table.add_row(*(row[k] for k, *_ in shown))
        parts: list[RenderableType] = [table]
        if all(s.clusters_formed is None for s in snap.servers):
            parts.append(Text("prompt clusters and shared steps: none (imagegen.share is off)",
                              style="grey62"))
        m = snap.metrics
        parts.append(Text(f"this slot: util {pct(m['gpu_utilisation'])}, GPU {m['gpu_energy_j']:,.0f} J, "
                          f"radio {m['tx_energy_j']:,.1f} J, over budget {m['over_budget_j']:,.0f} J"))
        return Panel(Group(*parts), title="GPU servers", border_style="blue")

    def learner_panel(self, snap: Snapshot, lay: ViewLayout, width: int = 1_000) -> Panel:
        lines = Text()
        if snap.learner is None:
            lines.append(f"policy {lay.policy}: no learner (a heuristic; it does not learn)\n", style="grey62")
        else:
            updates, checkpoint = snap.learner.get("updates"), snap.learner.get("checkpoint")
            trained = (f"trained: {updates} updates, {Path(checkpoint).name}" if checkpoint
                       else "untrained: no checkpoint")
            lines.append(f"policy {lay.policy} ({trained}), acting without exploration\n")
            m = snap.metrics
            if m.get("requests_delivered"):
                lines.append(f"last slot: mean steps {m['mean_steps']:.1f}, power {m['mean_power_w']:.2f} W\n")
        rated = [q for q in snap.qoe if not math.isnan(q)]
        if rated:
            lines.append("QoE ")
            lines.append(sparkline(snap.qoe, max(8, min(40, width - 4 - 30))), style="green3")
            lines.append(f"  mean {sum(rated) / len(rated):.2f}, last {rated[-1]:.2f}")
        else:
            lines.append("QoE: no ratings yet" if lay.feedback_mode != "silent"
                         else "QoE: none (feedback.mode: silent)", style="grey62")
        return Panel(lines, title="Learner", border_style="blue")

    def llm_panel(self, snap: Snapshot, lay: ViewLayout) -> Panel:
        m = snap.metrics
        if lay.feedback_mode == "silent":
            return Panel(Text("users are silent (feedback.mode: silent): no language model", style="grey62"),
                         title="Language model", border_style="blue")
        hit = m["cache_hit_rate"]
        latency = m["llm_median_latency_s"]
        text = Text(f"{lay.feedback_mode}: {int(m['llm_calls'])} calls, {int(m['cache_hits'])} cache hits"
                    f" ({pct(hit)}), median latency {NONE if math.isnan(latency) else f'{latency:.2f} s'}\n"
                    f"invalid answers {snap.invalid}, failed {snap.failed}")
        if lay.feedback_mode == "learned":
            mae = m["learned_mae"]
            text.append(f"\nlearned answers {int(m['learned_answers'])}, "
                        f"MAE vs LLM {NONE if math.isnan(mae) else f'{mae:.2f}'}")
        return Panel(text, title="Language model", border_style="blue")
