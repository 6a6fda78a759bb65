"""Fit the persona-feedback model of a scenario from real LLM answers, and save it.

    python -m scenarios.fit_feedback city_block --slots 300 --out scenarios/feedback_fits/city_block.json

The scenario runs with profiled images, a random base station (so that the
answers cover the whole range of steps, splits and powers) and
`feedback.mode: learned` with every delivery answered by the language model
(through the response cache: a second fit with the same seed asks nothing).
The regressor is then scored on the newest fifth of the answers, fitted on all,
and written as JSON (atomically, only at the end; an interrupted fit writes nothing, and
its answers stay in the cache so that running it again asks only what is missing);
`feedback.learned_start` names such a file.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from policies.heuristics import RandomPolicy
from scenarios.commands import Parser, add_debug_option, guarded, positive_int, scenario_path, seed_int
from scenarios.loader import ScenarioError, load_scenario
from scenarios.assemble import assemble
from world.city import CityBlock
from world.feedback_model import LearnedFeedback


def fit(path: Path, slots: int, seed: int, out: Path, force: bool) -> int:
    if out.exists() and not force:
        raise ScenarioError(f"--out '{out}' already exists; choose another path or pass --force to replace it")
    cfg = load_scenario(path)
    cfg = cfg.model_copy(update={
        "imagegen": cfg.imagegen.model_copy(update={"render": "profile"}),
        "feedback": cfg.feedback.model_copy(update={"mode": "learned", "learned_live_share": 1.0,
                                                    "learned_start": None})})
    parts = assemble(cfg, seed, policy=RandomPolicy(np.random.default_rng([seed, 1])))
    feedback, close = parts.feedback, parts.close
    assert isinstance(feedback, LearnedFeedback)
    model = CityBlock(cfg, parts.policy, seed=seed, feedback=feedback)
    started = time.perf_counter()
    try:
        for _ in range(slots):      # a bare block: the service is refitted once, at the end
            model.step()
            if model.slot % 20 == 0:
                s = feedback.stats
                print(f"slot {model.slot}/{slots}: {feedback.pairs} answers "
                      f"({s.calls} asked, {s.cache_hits} cached, {s.invalid} invalid), "
                      f"{time.perf_counter() - started:.0f} s", flush=True)
        feedback.refresh()
        if feedback.weights is None:
            raise ScenarioError(f"only {feedback.pairs} valid answers in {slots} slots, fewer than "
                                f"learned_min_pairs ({cfg.feedback.learned_min_pairs}); run more --slots")
        source = (f"{path.name}, seed {seed}, {slots} slots, random policy, profiled images, "
                  f"{feedback.pairs} answers of {cfg.feedback.llm.backend}:{cfg.feedback.llm.model}")
        out.parent.mkdir(parents=True, exist_ok=True)
        feedback.save(out, source)
    finally:
        close()
    a = feedback.agreement
    print(f"wrote {out}: {a['pairs']} answers; held-out MAE {a['mae']:.2f} rating points, "
          f"Spearman {a['spearman']:.2f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m scenarios.fit_feedback", description=__doc__.splitlines()[0])
    parser.add_argument("file", metavar="FILE", help="scenario YAML, or the name of a shipped scenario")
    parser.add_argument("--slots", type=positive_int, default=300, metavar="N", help="slots to collect answers over")
    parser.add_argument("--seed", type=seed_int, default=0, metavar="S", help="seed of the collection run")
    parser.add_argument("--out", type=Path, required=True, metavar="PATH", help="where to write the fit (JSON)")
    parser.add_argument("--force", action="store_true", help="replace an existing --out file")
    add_debug_option(parser)
    args = parser.parse_args(argv)
    return guarded(fit, scenario_path(args.file), args.slots, args.seed, args.out, args.force, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
