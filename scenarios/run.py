"""Run a scenario: build the block, step it, and write the run folder as it goes.

The run folder holds:
    config.yaml    the resolved scenario (written once, atomically, before the first slot)
    slots.csv      one row per finished slot (appended and flushed every slot)
    requests.csv   one row per finished request, with the user's feedback (appended and flushed every slot)
    users.csv      one row per user: name, persona summary, Big Five traits, walking speed
    run.json       how the run ended: finished, interrupted, stopped or failed, and the slots done
so a run that is interrupted keeps every slot it finished. Plots, the image sheet and the
summary are drawn from these files afterwards (`scenarios/report.py`).

A slot's requests are written before its row in slots.csv, so a slot is finished when its row
is there. Resuming (`run_scenario(..., resume=True)`) rebuilds the block from config.yaml and
replays the finished slots: the personas' recorded answers (requests.csv) are served again
instead of asking the model, and every replayed slot is checked against its row in slots.csv.
Then the files are cut back to the finished slots and the run goes on from there.

The block's parts (policy, feedback service) come from `scenarios.assemble`, the replay from
`scenarios.replay`, the tables' layout and the folder from `scenarios.tables`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Callable

from agents.persona import TRAITS
from scenarios.assemble import assemble, with_seed_and_slots
from scenarios.loader import ScenarioError
from scenarios.replay import RecordedAnswers, check_replay, cut_back, header, row_slot
from scenarios.tables import REQUEST_FIELDS, USER_FIELDS, RunFolder, csv_text, read_table
from world.city import CityBlock
from world.config import ScenarioConfig
from world.files import write_atomic
from world.runner import ROW_METRICS, SlotRunner

FINISH_S = 300.0          # longest the clock runs on after the last slot to finish the requests in flight, s


class FeedbackFailed(RuntimeError):
    """The language model stopped answering and the run was asked to stop at once (--fail-fast)."""


def default_run_dir(cfg: ScenarioConfig, seed: int) -> Path:
    """runs/<scenario>-<date>-<time>-seed<seed>."""
    return Path("runs") / f"{cfg.name}-{datetime.now():%Y%m%d-%H%M%S}-seed{seed}"


@dataclass
class RunResult:
    """Where a run wrote and what it measured."""

    out: Path
    slots: int
    requests_issued: int
    requests_delivered: int
    requests_rated: int
    mean_wait_s: float
    mean_qoe: float
    feedback_invalid: int
    feedback_failed: int
    llm_calls: int
    cache_hits: int
    service_energy_j: float
    seconds: float


class RunWriter:
    """Append-only CSV tables of a run folder.

    Args:
        folder: the run folder.
        append: go on with tables a resumed run already holds (no second header).
    """

    def __init__(self, folder: RunFolder, append: bool = False) -> None:
        self._files: dict[Path, IO[str]] = {}
        self.slots = self._open(folder.slots, ROW_METRICS, append)
        self.requests = self._open(folder.requests, REQUEST_FIELDS, append)

    def _open(self, path: Path, fields: tuple[str, ...], append: bool) -> tuple[Path, tuple[str, ...]]:
        header = not (append and path.is_file() and path.stat().st_size > 0)
        self._files[path] = path.open("a", newline="", encoding="utf-8")
        if header:
            self._append(path, [dict(zip(fields, fields))], fields)
        return path, fields

    def _append(self, path: Path, rows: list[dict[str, object]], fields: tuple[str, ...]) -> None:
        """One write and a flush, so an interruption leaves whole rows (a torn last line is not a row, see
        `read_table`). A failed write (a full disk) names the table."""
        f = self._files[path]
        try:
            f.write(csv_text(rows, fields))
            f.flush()
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, str(path)) from None

    def write_slot(self, run: SlotRunner) -> None:
        """The slot just finished: the requests finished in it, then its row (the slot's commit mark)."""
        self.write_requests(run.model)
        path, fields = self.slots
        self._append(path, [run.row], fields)

    def write_requests(self, model: CityBlock) -> None:
        """The requests finished in the slot just run."""
        path, fields = self.requests
        self._append(path, [{**r.as_record(), "finished_slot": model.slot} for r in model.completed], fields)

    def close(self) -> None:
        """Close every table; the first that cannot be closed (its last rows not written) is raised after."""
        failed: OSError | None = None
        for path, f in self._files.items():
            try:
                f.close()
            except OSError as exc:
                failed = failed or OSError(exc.errno, exc.strerror, str(path))
        if failed is not None:
            raise failed


def write_users(path: Path, model: CityBlock) -> None:
    """Who the users are, one row each: the plots group QoE by persona type from here."""
    rows = [{"user_id": u.unique_id, "index": u.index, "name": u.persona.name, "persona": u.persona.summary(),
             **dict(zip(TRAITS, u.persona.traits.as_tuple())), "speed_mps": u.speed_mps} for u in model.user_list]
    write_atomic(path, csv_text([dict(zip(USER_FIELDS, USER_FIELDS)), *rows], USER_FIELDS))


def run_scenario(cfg: ScenarioConfig, steps: int | None = None, seed: int | None = None,
                 out: Path | None = None, force: bool = False, fail_fast: bool = False,
                 log: Callable[[str], None] = print,
                 observer: Callable[[SlotRunner], None] | None = None,
                 log_every_s: float = 30.0, resume: bool = False,
                 progress: Callable[[str], None] | None = None) -> RunResult:
    """Build the block from `cfg`, run it, write the run folder.

    Args:
        cfg: the scenario.
        steps: slots to run; default `cfg.slots`.
        seed: overrides `cfg.seed`.
        out: run folder; default under runs/.
        force: replace the run in an existing folder.
        fail_fast: stop at the first feedback the language model failed to give.
        log: where progress lines go (plain ASCII, one line each): every tenth of the run,
            and at least every `log_every_s` seconds of wall time.
        observer: called with the run (`SlotRunner`: the model and the slot's row) after every slot (and its
            files) is finished; the live view reads it there. It must not change the model.
        log_every_s: wall-clock seconds between progress lines at the latest.
        resume: go on with the interrupted run in `out` (its config.yaml is `cfg`, see `RunFolder.read_config`):
            replay its finished slots, check them against slots.csv, then run the rest.
        progress: where the periodic slot lines go; default `log` (a live view counts slots itself).

    Raises:
        ScenarioError: bad input (run folder, steps), or a resumed run that does not replay as recorded.
        LlmSetupError: the language model cannot be started or reached.
        FeedbackFailed: with fail_fast, the model stopped answering.
    """
    seed = cfg.seed if seed is None else seed
    steps = cfg.slots if steps is None else steps
    cfg = with_seed_and_slots(cfg, seed, steps)
    recorded: list[dict[str, str]] = []
    answers: RecordedAnswers | None = None
    if resume:
        if out is None:
            raise ScenarioError("--resume needs the run folder")
        folder = RunFolder(out)
        recorded = read_table(folder.slots)
        if len(recorded) >= steps:
            raise ScenarioError(f"--resume: '{out}' has finished all {len(recorded)} slots; to run it longer "
                                f"pass --steps with more than {len(recorded)}; to redraw its plots and summary: "
                                f"python -m scenarios report {out}")
        requests = read_table(folder.requests)
        if recorded and (header(folder.slots) != ROW_METRICS or header(folder.requests) != REQUEST_FIELDS):
            raise ScenarioError(f"--resume: the tables in '{out}' were written by another version of aigcsim "
                                f"(their columns differ); start a new run")
        if recorded:
            answers = RecordedAnswers([r for r in requests if row_slot(r["finished_slot"]) <= len(recorded)])
    else:
        out = out or default_run_dir(cfg, seed)
        folder = RunFolder(out)
        folder.refuse_occupied(force)

    done = len(recorded)
    # the parts are built before the folder is made: a bad model file, or a language model that cannot
    # start, leaves nothing behind
    parts = assemble(cfg, seed, answers)
    try:
        if not resume:
            folder.create(force)
            folder.write_config(cfg)
        log(f"running {cfg.name}: {steps} slots of {cfg.slot_s:g} s, seed {seed}, run folder {out}"
            + (f" (resuming after slot {done})" if resume else ""))
        model = CityBlock(cfg, parts.policy, feedback=parts.feedback)
        run = SlotRunner(model)
    except BaseException:
        parts.close()
        raise
    tally = _Tally()
    writer: RunWriter | None = None
    status, error = "failed", ""
    started = time.perf_counter()
    every = max(1, steps // 10)
    logged = started
    try:
        for row in recorded:
            run.step()
            check_replay(run, row, folder)
            tally.add(model)
            if observer is not None:
                observer(run)
        if resume:
            if answers is not None:
                answers.stop()
            cut_back(folder, done)
            folder.write_config(cfg)
            if done:
                log(f"replayed slots 1-{done} as recorded; going on from slot {done + 1}")
        write_users(folder.users, model)
        writer = RunWriter(folder, append=resume)
        for _ in range(done, steps):
            m = run.step()
            writer.write_slot(run)
            tally.add(model)
            if fail_fast and m["feedback_failed"]:
                first = next(r.feedback for r in model.completed if r.feedback and r.feedback.failed)
                raise FeedbackFailed(f"slot {model.slot}: the language model did not answer ({first.error}); "
                                     f"finished slots are in {out}")
            now = time.perf_counter()
            if model.slot % every == 0 or model.slot == steps or now - logged >= log_every_s:
                logged = now
                (progress or log)(f"slot {model.slot}/{steps}  t={m['time_s']:.0f}s  issued={tally.issued}  "
                    f"delivered={tally.delivered}  rated={tally.rated}  in_flight={m['in_flight']}  "
                    f"mean_qoe={_fmt(tally.mean_qoe)}  llm_calls={m['llm_calls']}  cache_hits={m['cache_hits']}  "
                    f"invalid={tally.invalid}  failed={tally.failed}  gpu={m['gpu_utilisation']:.0%}  "
                    f"energy={tally.energy:.0f}J")
            if observer is not None:        # after the slot's line: a live view shows both of the same slot
                observer(run)
        if model.in_flight:
            finish_in_flight(run, writer, tally, observer, log)
        status = "finished"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    except FeedbackFailed as exc:
        status, error = "stopped", str(exc)
        raise
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        unclosed: OSError | None = None
        if writer is not None:
            try:
                writer.close()
            except OSError as exc:      # a full disk: the run stops as failed, and run.json still says so
                unclosed = exc
                if status == "finished":
                    status, error = "failed", f"{type(exc).__name__}: {exc}"
        parts.close()
        if writer is not None or not resume:     # a resume refused before writing leaves run.json as it was
            try:
                folder.write_state(status, steps, seed, error)
            except OSError:
                pass        # no room even for run.json: slots.csv still holds every finished slot
    if unclosed is not None:
        raise unclosed
    m = run.row
    return RunResult(out=out, slots=steps, requests_issued=tally.issued, requests_delivered=tally.delivered,
                     requests_rated=tally.rated, mean_wait_s=tally.mean_wait_s, mean_qoe=tally.mean_qoe,
                     feedback_invalid=tally.invalid, feedback_failed=tally.failed,
                     llm_calls=int(m["llm_calls"]), cache_hits=int(m["cache_hits"]),
                     service_energy_j=tally.energy, seconds=time.perf_counter() - started)


def finish_in_flight(run: SlotRunner, writer: RunWriter, tally: _Tally,
                     observer: Callable[[SlotRunner], None] | None, log: Callable[[str], None]) -> None:
    """After the last slot: no new requests; the clock runs on until every request in flight is answered
    (at most FINISH_S). The requests it finishes go into requests.csv (finished_slot after the run's last
    slot); slots.csv keeps the run's own slots, so a run can still be resumed to more of them."""
    model = run.model
    steps = model.slot
    log(f"finishing: no new requests after slot {steps}; {model.in_flight} in flight")
    model.closing = True
    while model.in_flight and (model.slot - steps) * model.slot_s < FINISH_S:
        run.step()
        writer.write_requests(model)
        tally.add(model)
        if observer is not None:
            observer(run)
    log(f"finished {model.slot - steps} s after the last slot: issued={tally.issued}  delivered={tally.delivered}  "
        f"rated={tally.rated}  in_flight={model.in_flight}  mean_qoe={_fmt(tally.mean_qoe)}")


@dataclass
class _Tally:
    """What the run has counted so far, for the progress lines and the result.

    Waits and QoE are kept as counts and sums, not per request, so a long run of many users holds no more
    than a short one.
    """

    issued: int = 0
    delivered: int = 0
    rated: int = 0
    invalid: int = 0
    failed: int = 0
    energy: float = 0.0
    total_wait_s: float = 0.0     # sum of the delivered requests' waits, s
    scored: int = 0               # finished requests with a valid QoE
    total_qoe: float = 0.0        # sum of their QoE

    def add(self, model: CityBlock) -> None:
        m = model.slot_metrics
        self.issued += int(m["requests_issued"])
        self.delivered += int(m["requests_delivered"])
        self.rated += int(m["requests_rated"])
        self.invalid += int(m["feedback_invalid"])
        self.failed += int(m["feedback_failed"])
        self.energy += m["service_energy_j"]
        self.total_wait_s += sum(r.wait_s for r in model.delivered)
        for r in model.completed:
            if not math.isnan(r.qoe):
                self.scored += 1
                self.total_qoe += r.qoe

    @property
    def mean_wait_s(self) -> float:
        return self.total_wait_s / self.delivered if self.delivered else math.nan

    @property
    def mean_qoe(self) -> float:
        return self.total_qoe / self.scored if self.scored else math.nan


def _fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}"
