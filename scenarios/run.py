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
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import time
from collections import defaultdict
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Callable

import numpy as np
import yaml
from pydantic import ValidationError

from agents.base_station import ACTION_FEATURES, OBS_FEATURES, AllocationPolicy
from agents.feedback import Delivery, Feedback, FeedbackService, FeedbackStats
from agents.persona import TRAITS, Persona
from agents.request import ImageRequest
from policies.ddpg import DDPG, CheckpointError
from policies.gddpg import GDDPG
from policies.heuristics import FixedPolicy, GreedyPolicy, OptimumPolicy, RandomPolicy
from scenarios.loader import SHIPPED, ScenarioError
from world.city import SLOT_METRICS, CityBlock
from world.config import LEARNER_NAMES, POLICIES, ScenarioConfig  # noqa: F401  # POLICIES: imported from here
from world.feedback import FeedbackCache, FeedbackPool
from world.feedback_model import FeedbackFitError, LearnedFeedback, load_fit
from world.files import write_atomic
from world.llm import EMBEDDED_MODELS, build_backends
from world.ray_feedback import build_ray_backends

USER_FIELDS = ("user_id", "index", "name", "persona", *TRAITS, "speed_mps")
# the request's own fields, then what the GPU servers' cooperative engine adds (empty when it does not share)
REQUEST_FIELDS = (*ImageRequest(request_id=0, user_id=0, persona="", prompt="", topic="", issued_s=0.0).as_record(),
                  "finished_slot")
# slot columns that a replay need not repeat: counts of where answers came from and wall-clock latency
NOT_REPLAYED = ("llm_calls", "cache_hits", "cache_hit_rate", "llm_median_latency_s")
FINISH_S = 300.0          # longest the clock runs on after the last slot to finish the requests in flight, s


LEARNERS = {"gddpg": GDDPG, "ddpg": DDPG}     # the learners' classes, by their names in world.config
assert tuple(LEARNERS) == LEARNER_NAMES


def start_fit(cfg: ScenarioConfig) -> np.ndarray | None:
    """The weights of the scenario's `feedback.learned_start` fit, checked; None when it names none.

    Raises:
        ScenarioError: the fit is missing, unreadable or made for other features.
    """
    if not cfg.feedback.learned_start:
        return None
    try:
        return load_fit(resolve_shipped(cfg.feedback.learned_start, "feedback.learned_start"))
    except FeedbackFitError as exc:
        raise ScenarioError(f"feedback.learned_start: {exc}") from None


def make_policy(cfg: ScenarioConfig, seed: int,
                feedback: FeedbackService | None = None) -> AllocationPolicy:
    """The base station's policy named in the scenario.

    A learner (gddpg, ddpg) loads `base_station.checkpoint` when it names one, else starts untrained.
    'optimum' plans on the learned persona-feedback model: the run's own when feedback is learned,
    else the scenario's `feedback.learned_start` fit; call its `bind(model)` once the block exists.
    """
    name = cfg.base_station.policy
    if name in LEARNERS:
        if cfg.base_station.checkpoint is None:
            return LEARNERS[name](seed=seed)
        path = resolve_shipped(cfg.base_station.checkpoint, "base_station.checkpoint")
        try:
            learner, _ = LEARNERS[name].from_checkpoint(path)
        except CheckpointError as exc:
            raise ScenarioError(f"base_station.checkpoint: {exc}") from None
        if learner.obs_dim != len(OBS_FEATURES) or learner.act_dim != len(ACTION_FEATURES):
            raise ScenarioError(f"base_station.checkpoint: '{path}' observes {learner.obs_dim} values and acts on "
                                f"{learner.act_dim}; the base station gives {len(OBS_FEATURES)} and takes "
                                f"{len(ACTION_FEATURES)}: it was made for another observation layout; retrain it with "
                                f"`python -m scenarios.train SCENARIO --policy {name}`")
        return learner
    if name == "greedy":
        return GreedyPolicy(cfg)
    if name == "optimum":
        if not isinstance(feedback, LearnedFeedback):
            if not cfg.feedback.learned_start:
                raise ScenarioError("policy 'optimum' plans on the learned persona-feedback model: set "
                                    "feedback.learned_start (make a fit with `python -m scenarios.fit_feedback`)")
            start = start_fit(cfg)
            feedback = LearnedFeedback(None, np.random.default_rng([seed, 3]), 0.0, 30, start=start)
        return OptimumPolicy(cfg, feedback)
    if name == "random":
        return RandomPolicy(np.random.default_rng([seed, 1]))
    return FixedPolicy()


def with_options(cfg: ScenarioConfig, policy: str | None, checkpoint: Path | None) -> ScenarioConfig:
    """The scenario with --policy and --checkpoint applied; a checkpoint only goes with a learner."""
    bs = cfg.base_station
    if policy is not None and policy != bs.policy:
        # another policy than the scenario's: the scenario's checkpoint belongs to its own policy
        bs = bs.model_copy(update={"policy": policy, "checkpoint": None})
    if checkpoint is not None:
        if bs.policy not in LEARNERS:
            raise ScenarioError(
                f"--checkpoint {checkpoint}: policy '{bs.policy}' is a heuristic and loads no weights; "
                f"checkpoints belong to the learners ({', '.join(LEARNERS)}): add --policy gddpg or --policy ddpg")
        if not checkpoint.is_file():
            raise ScenarioError(f"--checkpoint {checkpoint}: no such file; give a checkpoint written by "
                                f"`python -m scenarios.train` (its run folder's policy.pt)")
        bs = bs.model_copy(update={"checkpoint": str(checkpoint.resolve())})
    return cfg.model_copy(update={"base_station": bs})


class FeedbackFailed(RuntimeError):
    """The language model stopped answering and the run was asked to stop at once (--fail-fast)."""


def make_feedback(cfg: ScenarioConfig, seed: int, recorded: RecordedAnswers | None = None,
                  ) -> tuple[FeedbackService | None, Callable[[], None]]:
    """The personas' feedback service named in the scenario, and how to shut it down.

    With `recorded`, the model's answers come from a resumed run's record while there is one.
    """
    fcfg = cfg.feedback
    if fcfg.mode == "silent":
        return None, lambda: None
    start = start_fit(cfg)
    if fcfg.mode == "learned" and start is not None and fcfg.learned_live_share == 0:
        frozen = LearnedFeedback(None, np.random.default_rng([seed, 2]), 0.0, fcfg.learned_min_pairs, start=start)
        return frozen, frozen.close
    if fcfg.serve == "ray":
        backends, close_backends = build_ray_backends(fcfg.llm, fcfg.instances)
    else:
        backends, close_backends = build_backends(fcfg.llm, fcfg.instances)
    sampling = fcfg.llm.model_dump(include={"temperature", "top_logprobs", "max_tokens", "max_retries"})
    cache = FeedbackCache(fcfg.cache) if fcfg.cache else None
    # the cache key names the model by its file's hash, so a changed model never reuses old answers
    model_hash = EMBEDDED_MODELS[fcfg.llm.model].sha256 if fcfg.llm.backend == "embedded" else fcfg.llm.ollama_model
    pool = FeedbackPool(backends, backend_id=f"{backends[0].name}@{model_hash}", sampling=sampling, cache=cache)
    asked: FeedbackService = pool
    if recorded is not None:
        recorded.pool = pool
        asked = recorded
    engine = asked
    if fcfg.mode == "learned":
        engine = LearnedFeedback(asked, np.random.default_rng([seed, 2]), fcfg.learned_live_share,
                                 fcfg.learned_min_pairs, start=start)

    def close() -> None:
        engine.close()
        close_backends()

    return engine, close


def resolve_shipped(name: str, field: str) -> Path:
    """A file named in a scenario: as given (relative to the working folder), else beside the shipped scenarios.

    A shipped model file (a trained checkpoint, a feedback fit) is checked against the sha256 in
    scenarios/SHA256SUMS before it is used.
    """
    path = Path(name)
    if not (path.is_file() or path.is_absolute()):
        path = SHIPPED / path
        if not path.is_file():
            raise ScenarioError(f"{field}: '{name}' does not exist here or in {SHIPPED}; give a path to an "
                                f"existing file")
    verify_shipped(path, field)
    return path


def shipped_sums(folder: Path | None = None) -> dict[str, str]:
    """The sha256 of each shipped model file, by its path relative to the scenarios folder (SHA256SUMS)."""
    sums = (folder or SHIPPED) / "SHA256SUMS"
    if not sums.is_file():
        return {}
    return {rel.strip().lstrip("*"): digest for digest, rel in
            (line.split(maxsplit=1) for line in sums.read_text(encoding="utf-8").splitlines() if line.strip())}


def verify_shipped(path: Path, field: str) -> None:
    """Refuse a shipped model file whose content is not the one the project ships."""
    try:
        rel = path.resolve().relative_to(SHIPPED.resolve()).as_posix()
    except ValueError:
        return          # not a shipped file: the user's own, checked by its loader
    expected = shipped_sums().get(rel)
    if expected is None or not path.is_file():
        return
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected:
        raise ScenarioError(f"{field}: the shipped file {path} has sha256 {digest[:16]}..., expected "
                            f"{expected[:16]}... (scenarios/SHA256SUMS): it was changed or damaged; restore it "
                            f"(`git checkout -- scenarios/{rel}` or reinstall aigcsim), or rebuild it with "
                            f"`make checkpoint` / `make feedback-fit`")


def default_run_dir(cfg: ScenarioConfig, seed: int) -> Path:
    """runs/<scenario>-<date>-<time>-seed<seed>."""
    return Path("runs") / f"{cfg.name}-{datetime.now():%Y%m%d-%H%M%S}-seed{seed}"


def refuse_occupied(out: Path, force: bool) -> None:
    """Refuse a run folder that is a file, or that holds a run and is not to be replaced."""
    if out.exists() and not out.is_dir():
        raise ScenarioError(f"--out '{out}' is a file, not a folder; choose another path")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ScenarioError(f"run folder '{out}' already holds files; choose another --out, "
                            f"or pass --force to replace its run")


def prepare_run_dir(out: Path, force: bool) -> Path:
    """Create the run folder; refuse to write into one that holds a run unless forced."""
    refuse_occupied(out, force)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name in ("config.yaml", "slots.csv", "requests.csv", "users.csv"):
            (out / name).unlink(missing_ok=True)
    except OSError as exc:
        raise ScenarioError(f"cannot create run folder '{out}': {exc.strerror}; choose another --out") from None
    return out


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
        out: the run folder.
        append: go on with tables a resumed run already holds (no second header).
    """

    def __init__(self, out: Path, append: bool = False) -> None:
        self._files: dict[Path, IO[str]] = {}
        self.slots = self._open(out / "slots.csv", SLOT_METRICS, append)
        self.requests = self._open(out / "requests.csv", REQUEST_FIELDS, append)

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
            f.write(_csv_text(rows, fields))
            f.flush()
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, str(path)) from None

    def write_slot(self, model: CityBlock) -> None:
        """The slot just finished: the requests finished in it, then its metrics (the slot's commit mark)."""
        self.write_requests(model)
        path, fields = self.slots
        self._append(path, [model.slot_metrics], fields)

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


def _csv_text(rows: list[dict[str, object]], fields: tuple[str, ...]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writerows(rows)
    return buffer.getvalue()


def read_table(path: Path) -> list[dict[str, str]]:
    """The whole rows of a run folder's CSV table; a last line cut off by a crash is not a row."""
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    if not text.endswith("\n"):
        text = text[:text.rfind("\n") + 1]
    return list(csv.DictReader(io.StringIO(text, newline="")))


class RecordedAnswers:
    """The personas' answers a run recorded, served again while a resumed run replays its finished slots.

    A `FeedbackService` in front of the run's pool: a delivery the record holds an answer to
    gets that answer, anything else goes to the model. `stop()` ends the replay.
    """

    def __init__(self, rows: list[dict[str, str]]) -> None:
        self.pool: FeedbackPool | None = None
        self.answers: dict[tuple[str, str], list[Feedback]] = defaultdict(list)
        for row in rows:
            if row["feedback_backend"] in ("", "learned") or row["feedback_valid"] == "":
                continue      # a silent user, or a rating predicted by the learned model (predicted again)
            delivery = Delivery(prompt=row["prompt"], steps=int(row["steps"]), sharpness=float(row["sharpness"]),
                                fidelity=float(row["fidelity"]), wait_s=float(row["wait_s"]), seen=row["seen"])
            self.answers[self._key(row["persona"], delivery)].append(Feedback(
                text=row["feedback_text"], rating=int(row["rating"]) if row["rating"] else None,
                expected_rating=float(row["expected_rating"]) if row["expected_rating"] else None, raw="",
                latency_s=0.0, backend=row["feedback_backend"], valid=row["feedback_valid"] == "True",
                cached=True, error=row["feedback_error"], failed=row["feedback_failed"] == "True"))

    @staticmethod
    def _key(persona: str, delivery: Delivery) -> tuple[str, str]:
        return persona, json.dumps(delivery.key(), sort_keys=True)

    def submit(self, persona: Persona, delivery: Delivery) -> Future[Feedback]:
        answers = self.answers.get(self._key(persona.summary(), delivery))
        if answers:
            done: Future[Feedback] = Future()
            done.set_result(answers.pop(0))
            return done
        return self._pool.submit(persona, delivery)

    def stop(self) -> None:
        """The replay is over: every later answer comes from the model."""
        self.answers.clear()

    @property
    def _pool(self) -> FeedbackPool:
        if self.pool is None:
            raise RuntimeError("RecordedAnswers is used before make_feedback gave it a pool")
        return self.pool

    @property
    def stats(self) -> FeedbackStats:
        return self._pool.stats

    @property
    def agreement(self) -> dict[str, float]:
        return self._pool.agreement

    def learn(self, persona: Persona, delivery: Delivery, feedback: Feedback) -> None:
        self._pool.learn(persona, delivery, feedback)

    def refresh(self) -> None:
        self._pool.refresh()

    def close(self) -> None:
        self._pool.close()


def write_users(path: Path, model: CityBlock) -> None:
    """Who the users are, one row each: the plots group QoE by persona type from here."""
    rows = [{"user_id": u.unique_id, "index": u.index, "name": u.persona.name, "persona": u.persona.summary(),
             **dict(zip(TRAITS, u.persona.traits.as_tuple())), "speed_mps": u.speed_mps} for u in model.user_list]
    write_atomic(path, _csv_text([dict(zip(USER_FIELDS, USER_FIELDS)), *rows], USER_FIELDS))


def run_scenario(cfg: ScenarioConfig, steps: int | None = None, seed: int | None = None,
                 out: Path | None = None, force: bool = False, fail_fast: bool = False,
                 log: Callable[[str], None] = print,
                 observer: Callable[[CityBlock], None] | None = None,
                 log_every_s: float = 30.0, resume: bool = False) -> RunResult:
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
        observer: called with the model after every slot (and its files) is finished; the live
            view reads the model there. It must not change the model.
        log_every_s: wall-clock seconds between progress lines at the latest.
        resume: go on with the interrupted run in `out` (its config.yaml is `cfg`, see `resume_config`):
            replay its finished slots, check them against slots.csv, then run the rest.

    Raises:
        ScenarioError: bad input (run folder, steps), or a resumed run that does not replay as recorded.
        LlmSetupError: the language model cannot be started or reached.
        FeedbackFailed: with fail_fast, the model stopped answering.
    """
    seed = cfg.seed if seed is None else seed
    steps = cfg.slots if steps is None else steps
    cfg = with_seed_and_slots(cfg, seed, steps)
    # a bad checkpoint or fit is refused before the run folder is touched ('optimum' needs the feedback first)
    policy = make_policy(cfg, seed) if cfg.base_station.policy != "optimum" else None
    start_fit(cfg)
    recorded: list[dict[str, str]] = []
    answers: RecordedAnswers | None = None
    if resume:
        if out is None:
            raise ScenarioError("--resume needs the run folder")
        recorded = read_table(out / "slots.csv")
        if len(recorded) >= steps:
            raise ScenarioError(f"--resume: '{out}' has finished all {len(recorded)} slots; to run it longer "
                                f"pass --steps with more than {len(recorded)}; to redraw its plots and summary: "
                                f"python -m scenarios report {out}")
        requests = read_table(out / "requests.csv")
        if recorded and (_header(out / "slots.csv") != SLOT_METRICS or _header(out / "requests.csv") != REQUEST_FIELDS):
            raise ScenarioError(f"--resume: the tables in '{out}' were written by another version of aigcsim "
                                f"(their columns differ); start a new run")
        if recorded:
            answers = RecordedAnswers([r for r in requests if _int(r["finished_slot"]) <= len(recorded)])
    else:
        out = out or default_run_dir(cfg, seed)
        refuse_occupied(out, force)

    done = len(recorded)
    # the language model is started before the folder is made: a model that cannot start leaves nothing behind
    feedback, close_feedback = make_feedback(cfg, seed, answers)
    try:
        if not resume:
            prepare_run_dir(out, force)
            write_atomic(out / "config.yaml", yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
        log(f"running {cfg.name}: {steps} slots of {cfg.slot_s:g} s, seed {seed}, run folder {out}"
            + (f" (resuming after slot {done})" if resume else ""))
        policy = policy or make_policy(cfg, seed, feedback)
        model = CityBlock(cfg, policy, feedback=feedback)
        if hasattr(policy, "bind"):
            policy.bind(model)
    except BaseException:
        close_feedback()
        raise
    tally = _Tally()
    writer: RunWriter | None = None
    status, error = "failed", ""
    started = time.perf_counter()
    every = max(1, steps // 10)
    logged = started
    try:
        for row in recorded:
            model.step()
            _check_replay(model, row, out)
            tally.add(model)
            if observer is not None:
                observer(model)
        if resume:
            if answers is not None:
                answers.stop()
            _cut_back(out, done)
            write_atomic(out / "config.yaml", yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
            if done:
                log(f"replayed slots 1-{done} as recorded; going on from slot {done + 1}")
        write_users(out / "users.csv", model)
        writer = RunWriter(out, append=resume)
        for _ in range(done, steps):
            model.step()
            writer.write_slot(model)
            m = model.slot_metrics
            tally.add(model)
            if fail_fast and m["feedback_failed"]:
                first = next(r.feedback for r in model.completed if r.feedback and r.feedback.failed)
                raise FeedbackFailed(f"slot {model.slot}: the language model did not answer ({first.error}); "
                                     f"finished slots are in {out}")
            if observer is not None:
                observer(model)
            now = time.perf_counter()
            if model.slot % every == 0 or model.slot == steps or now - logged >= log_every_s:
                logged = now
                log(f"slot {model.slot}/{steps}  t={m['time_s']:.0f}s  issued={tally.issued}  "
                    f"delivered={tally.delivered}  rated={tally.rated}  in_flight={m['in_flight']}  "
                    f"mean_qoe={_fmt(tally.mean_qoe)}  llm_calls={m['llm_calls']}  cache_hits={m['cache_hits']}  "
                    f"invalid={tally.invalid}  failed={tally.failed}  gpu={m['gpu_utilisation']:.0%}  "
                    f"energy={tally.energy:.0f}J")
        if model.in_flight:
            finish_in_flight(model, writer, tally, observer, log)
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
        close_feedback()
        if writer is not None or not resume:     # a resume refused before writing leaves run.json as it was
            try:
                write_atomic(out / "run.json", json.dumps(
                    {"status": status, "slots_done": len(read_table(out / "slots.csv")), "slots": steps,
                     "seed": seed, "error": error}, indent=1) + "\n")
            except OSError:
                pass        # no room even for run.json: slots.csv still holds every finished slot
    if unclosed is not None:
        raise unclosed
    m = model.slot_metrics
    return RunResult(out=out, slots=steps, requests_issued=tally.issued, requests_delivered=tally.delivered,
                     requests_rated=tally.rated, mean_wait_s=tally.mean_wait_s, mean_qoe=tally.mean_qoe,
                     feedback_invalid=tally.invalid, feedback_failed=tally.failed,
                     llm_calls=int(m["llm_calls"]), cache_hits=int(m["cache_hits"]),
                     service_energy_j=tally.energy, seconds=time.perf_counter() - started)


def finish_in_flight(model: CityBlock, writer: RunWriter, tally: _Tally,
                     observer: Callable[[CityBlock], None] | None, log: Callable[[str], None]) -> None:
    """After the last slot: no new requests; the clock runs on until every request in flight is answered
    (at most FINISH_S). The requests it finishes go into requests.csv (finished_slot after the run's last
    slot); slots.csv keeps the run's own slots, so a run can still be resumed to more of them."""
    steps = model.slot
    log(f"finishing: no new requests after slot {steps}; {model.in_flight} in flight")
    model.closing = True
    while model.in_flight and (model.slot - steps) * model.slot_s < FINISH_S:
        model.step()
        writer.write_requests(model)
        tally.add(model)
        if observer is not None:
            observer(model)
    log(f"finished {model.slot - steps} s after the last slot: issued={tally.issued}  delivered={tally.delivered}  "
        f"rated={tally.rated}  in_flight={model.in_flight}  mean_qoe={_fmt(tally.mean_qoe)}")


def with_seed_and_slots(cfg: ScenarioConfig, seed: int, slots: int) -> ScenarioConfig:
    """The scenario with --seed and --steps applied, checked as if they were written in the file."""
    try:
        return ScenarioConfig.model_validate({**cfg.model_dump(), "seed": seed, "slots": slots})
    except ValidationError as exc:
        err = exc.errors()[0]
        flag = {"seed": "--seed", "slots": "--steps"}.get(str(err["loc"][0]), ".".join(map(str, err["loc"])))
        raise ScenarioError(f"{flag}: got {err.get('input')!r}; {err['msg']}") from None


def resume_config(out: Path) -> ScenarioConfig:
    """The scenario of the run in folder `out`, as it was resolved when the run started (its config.yaml)."""
    from scenarios.loader import load_scenario

    if not (out / "config.yaml").is_file():
        raise ScenarioError(f"--resume: '{out}' holds no run (no config.yaml); give the folder of an "
                            f"interrupted run")
    return load_scenario(out / "config.yaml")


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


def _check_replay(model: CityBlock, row: dict[str, str], out: Path) -> None:
    """A replayed slot must match its record; otherwise the run cannot go on where it stopped."""
    for key in SLOT_METRICS:
        if key in NOT_REPLAYED or key not in row:
            continue
        got, want = float(model.slot_metrics[key]), float(row[key])
        if not (got == want or (math.isnan(got) and math.isnan(want)) or math.isclose(got, want, rel_tol=1e-9)):
            raise ScenarioError(
                f"--resume: slot {model.slot} does not replay as recorded in {out / 'slots.csv'} ({key}: recorded "
                f"{row[key]}, replayed {got!r}); the code, the installed packages or the files the run reads have "
                f"changed since it started. Nothing was changed in the run folder; start a new run instead")


def _cut_back(out: Path, done: int) -> None:
    """Cut the tables back to the first `done` slots (a slot cut off by the interruption is dropped)."""
    slots = read_table(out / "slots.csv")[:done]
    requests = [r for r in read_table(out / "requests.csv") if _int(r["finished_slot"]) <= done]
    for name, fields, rows in (("slots.csv", SLOT_METRICS, slots), ("requests.csv", REQUEST_FIELDS, requests)):
        write_atomic(out / name, _csv_text([dict(zip(fields, fields)), *rows], fields))


def _header(path: Path) -> tuple[str, ...]:
    if not path.is_file():
        return ()
    with path.open(newline="", encoding="utf-8") as f:
        return tuple(next(csv.reader(f), ()))


def _int(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 1 << 62      # unreadable: treated as after every finished slot


def _fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}"
