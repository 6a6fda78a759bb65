"""A sweep's plan: the command line's --seeds, --policies and --set values, and every combination of them
as a `PlannedRun` (its folder name, policy, seed, variant and checked scenario). `scenarios.sweep` runs them.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from scenarios.assemble import with_seed_and_slots
from scenarios.loader import ScenarioError, load_scenario, parse_value, with_options
from world.config import MAX_SEED, POLICIES, ScenarioConfig

FOLDER_CHARS = re.compile(r"[^A-Za-z0-9_.=+-]+")


@dataclass(frozen=True)
class PlannedRun:
    """One combination of a sweep.

    Attributes:
        name: its folder in the sweep folder, e.g. "greedy-seed3" or "gddpg-users.count=100-seed0".
        policy: the base station's policy.
        seed: the run's seed.
        variant: the --set values that vary across the sweep, (key, value as given).
        cfg: the scenario with the policy, seed, slots and --set values applied.
    """

    name: str
    policy: str
    seed: int
    variant: tuple[tuple[str, str], ...]
    cfg: ScenarioConfig

    @property
    def label(self) -> str:
        """The variant in words ("users.count=100"), "" when the sweep has one variant."""
        return ", ".join(f"{k}={v}" for k, v in self.variant)


def parse_sets(items: Sequence[str]) -> dict[str, list[str]]:
    """`key=value` assignments, grouped by key in order: a key given more than once is a variant axis.

    Raises:
        ScenarioError: an item is not key=value, or a key repeats a value.
    """
    sets: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key or not re.fullmatch(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*", key):
            raise ScenarioError(f"--set {item!r}: give key=value with the field's dotted path, "
                                f"e.g. --set users.count=100")
        if value in sets.setdefault(key, []):
            raise ScenarioError(f"--set {key}={value} is given twice; give each value of a variant once")
        sets[key].append(value)
    return sets


def parse_seeds(text: str) -> list[int]:
    """`--seeds N`: the seeds 0 to N-1; `--seeds 3,8,21`: those seeds."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [int(p) for p in parts if p]
    except ValueError:
        raise ScenarioError(f"--seeds {text!r}: give a count (--seeds 5 runs seeds 0-4) or a list of seeds "
                            f"(--seeds 3,8,21)") from None
    if "," not in text:
        if len(values) != 1 or not 1 <= values[0] <= 10_000:
            raise ScenarioError(f"--seeds {text!r}: a count of seeds is 1 to 10000")
        return list(range(values[0]))
    if not values or any(not 0 <= v <= MAX_SEED for v in values) or len(set(values)) != len(values):
        raise ScenarioError(f"--seeds {text!r}: seeds are distinct whole numbers 0 to {MAX_SEED}")
    return values


def parse_policies(text: str | None, default: str) -> list[str]:
    """`--policies gddpg,ddpg,greedy`; none given: the scenario's own policy."""
    if text is None:
        return [default]
    names = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in names if p not in POLICIES]
    if not names or unknown:
        raise ScenarioError(f"--policies {text!r}: {', '.join(map(repr, unknown)) or 'none given'} "
                            f"{'is' if len(unknown) == 1 else 'are'} not a policy; choose from {', '.join(POLICIES)}")
    if len(set(names)) != len(names):
        raise ScenarioError(f"--policies {text!r}: a policy is named twice")
    return names


def plan_sweep(path: Path, seeds: Sequence[int], policies: Sequence[str], sets: dict[str, list[str]],
               steps: int | None = None, checkpoints: dict[str, Path] | None = None) -> list[PlannedRun]:
    """Every combination of variants x policies x seeds, each scenario checked as the loader checks a file.

    A `--set` value is read as YAML (`true`, `0.5`, `[1, 2]`). A learner takes its checkpoint from
    `checkpoints` (its name -> a policy.pt), else the scenario's when it is the scenario's own
    policy, else it acts with its untrained initial weights (runs evaluate; they do not train).

    Raises:
        ScenarioError: the file, a --set value or a checkpoint is not valid; the message names it.
    """
    checkpoints = checkpoints or {}
    for name, ckpt in checkpoints.items():
        if name not in policies:
            raise ScenarioError(f"--checkpoint {name}={ckpt}: '{name}' is not in --policies")
    fixed = {k: _value(k, v[0]) for k, v in sets.items() if len(v) == 1}
    axes = [(k, v) for k, v in sets.items() if len(v) > 1]
    runs = []
    for combo in itertools.product(*(values for _, values in axes)):
        variant = tuple((key, text) for (key, _), text in zip(axes, combo))
        overrides = {**fixed, **{k: _value(k, text) for k, text in variant}}
        try:
            base = load_scenario(path, overrides)
        except ScenarioError as exc:
            given = " ".join(f"--set {k}={v}" for k, v in [*((k, v[0]) for k, v in sets.items() if len(v) == 1),
                                                            *variant])
            raise ScenarioError(f"with {given}: {exc}" if given else str(exc)) from None
        base = _absolute_paths(base)
        for policy in policies:
            cfg = with_options(base, policy, checkpoints.get(policy))
            for seed in seeds:
                name = FOLDER_CHARS.sub("_", "-".join([policy, *(f"{k}={v}" for k, v in variant), f"seed{seed}"]))
                runs.append(PlannedRun(name=name, policy=policy, seed=seed, variant=variant,
                                       cfg=with_seed_and_slots(cfg, seed, cfg.slots if steps is None else steps)))
    return runs


def _value(key: str, text: str) -> Any:
    try:
        return parse_value(text) if text.strip() else text
    except yaml.YAMLError:
        raise ScenarioError(f"--set {key}={text}: not a YAML value; quote text, e.g. --set {key}='\"{text}\"'") \
            from None


def _absolute_paths(cfg: ScenarioConfig) -> ScenarioConfig:
    """Files the scenario names relative to this folder, made absolute: a Ray worker may run elsewhere."""
    fb, bs = cfg.feedback, cfg.base_station
    llm = fb.llm.model_copy(update={"cache_dir": str(Path(fb.llm.cache_dir).absolute())})
    update: dict[str, Any] = {"llm": llm}
    if fb.cache:
        update["cache"] = str(Path(fb.cache).absolute())
    if fb.learned_start and Path(fb.learned_start).is_file():
        update["learned_start"] = str(Path(fb.learned_start).absolute())
    checkpoint = bs.checkpoint
    if checkpoint and Path(checkpoint).is_file():
        bs = bs.model_copy(update={"checkpoint": str(Path(checkpoint).absolute())})
    return cfg.model_copy(update={"feedback": fb.model_copy(update=update), "base_station": bs})
