"""The options a training is started with (`python -m scenarios.train`): their defaults, and what a resumed run
goes on with. train.json records them when a run starts (`scenarios.training.train`); `--resume` reads them back
and refuses an option that contradicts them. Nothing here loads torch: the command's --help stays quick.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from scenarios.loader import ScenarioError
from scenarios.tables import RunFolder

FEEDBACK = ("learned", "frozen", "live")     # --feedback: see scenarios.training.training_config


@dataclass
class TrainOptions:
    """What a training run does besides the scenario (the defaults are the command's)."""

    policy: str = "gddpg"
    episodes: int = 100
    seed: int = 0
    feedback: str = "learned"
    render: str = "profile"
    updates_per_request: int = 2
    learning_starts: int = 256
    max_requests: int = 8
    checkpoint_every: int = 5
    threads: int = 1


# The options train.json records, with their defaults: what --resume goes on with (--episodes may lengthen a run).
RECORDED = {f.name: f.default for f in fields(TrainOptions) if f.name != "episodes"}
FLAGS = {k: "--" + k.replace("_", "-") for k in RECORDED}


def resumed_options(out: Path, given: dict[str, Any], episodes: int | None, file: Path | None) -> TrainOptions:
    """The options `out` was started with (its train.json), lengthened to `episodes` when given.

    Raises:
        ScenarioError: `out` holds no training run, or an option given contradicts the recorded one.
    """
    saved = RunFolder(out, "training").read_options()
    recorded = {k: saved.get(k, default) for k, default in RECORDED.items()}
    for key, value in given.items():
        if value != recorded[key]:
            raise ScenarioError(f"--resume: '{out}' trains {recorded['policy']} with {FLAGS[key]} {recorded[key]}, "
                                f"not {value}; a resumed run goes on with the options it was started with: drop "
                                f"{FLAGS[key]} (or start a new run with another --out)")
    if file is not None and saved.get("scenario") and Path(saved["scenario"]).resolve() != file.resolve():
        raise ScenarioError(f"--resume: '{out}' trains on {saved['scenario']}, not {file}; drop FILE or give that one")
    return TrainOptions(episodes=episodes or int(saved.get("episodes", 1)), **recorded)
