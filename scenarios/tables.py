"""A run folder and its tables, as `run`, `train`, `sweep` and `report` share them.

`RunFolder` owns a folder's files: their names, creating the folder (refusing one that holds a run
unless told to replace it), the resolved scenario (config.yaml), how the run ended (run.json) and the
options a training was started with (train.json). Tables are written as whole rows (one write, then a
flush: `csv_text` builds the text) and read back as rows of strings (`read_table`), a last line cut
off by a crash being no row.
"""

from __future__ import annotations

import csv
import math
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from agents.persona import TRAITS
from agents.request import ImageRequest
from scenarios.loader import ScenarioError
from world.files import write_atomic

if TYPE_CHECKING:
    from world.config import ScenarioConfig

USER_FIELDS = ("user_id", "index", "name", "persona", *TRAITS, "speed_mps")     # users.csv
# requests.csv: the request's own fields (those a sharing GPU engine adds last), then the slot it finished in
REQUEST_FIELDS = (*ImageRequest(request_id=0, user_id=0, persona="", prompt="", topic="", issued_s=0.0).as_record(),
                  "finished_slot")


def csv_text(rows: Iterable[Mapping[str, object]], fields: Sequence[str], header: bool = False) -> str:
    """CSV text of `rows` in the order of `fields` (a missing field is an empty cell, others are left out),
    with the header line first when asked."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields), lineterminator="\n", extrasaction="ignore")
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def read_table(path: Path) -> list[dict[str, str]]:
    """The whole rows of a CSV table as strings; none when the file is missing; a last line cut off by a
    crash is not a row."""
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    if not text.endswith("\n"):
        text = text[:text.rfind("\n") + 1]
    return list(csv.DictReader(io.StringIO(text, newline="")))


class RunFolder:
    """The folder of one run (`kind` "run": a scenario run, also each run of a sweep) or one training.

    Files of a run: config.yaml, slots.csv, requests.csv, users.csv as it goes, run.json when it ends
    (plots and the image sheet are the report's; in a sweep, result.json last). Files of a training: config.yaml and train.json when
    it starts, curve.csv, checkpoints/last.pt, policy.pt and learning_curve.png.
    """

    WRITES = {"run": ("config.yaml", "slots.csv", "requests.csv", "users.csv"),
              "training": ("config.yaml", "curve.csv", "policy.pt", "learning_curve.png", "checkpoints/last.pt")}
    FOLDERS = {"run": (), "training": ("checkpoints",)}
    GO_ON = {"run": "", "training": "pass --resume to go on training, "}

    def __init__(self, path: Path, kind: Literal["run", "training"] = "run") -> None:
        self.path = Path(path)
        self.kind = kind
        self.config = self.path / "config.yaml"
        self.slots = self.path / "slots.csv"
        self.requests = self.path / "requests.csv"
        self.users = self.path / "users.csv"
        self.state = self.path / "run.json"
        self.result = self.path / "result.json"         # a sweep's row of the run, written last
        self.options = self.path / "train.json"
        self.curve = self.path / "curve.csv"
        self.checkpoint = self.path / "checkpoints" / "last.pt"
        self.policy = self.path / "policy.pt"

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def refuse_occupied(self, force: bool) -> None:
        """Refuse a path that is a file, or a folder that holds files and is not to be replaced."""
        out = self.path
        if out.exists() and not out.is_dir():
            raise ScenarioError(f"--out '{out}' is a file, not a folder; choose another path")
        if out.is_dir() and any(out.iterdir()) and not force:
            raise ScenarioError(f"run folder '{out}' already holds files; choose another --out, "
                                f"{self.GO_ON[self.kind]}or pass --force to replace its run")

    def create(self, force: bool) -> None:
        """Make the folder (refused as `refuse_occupied` says); the files a run of this kind writes, left by an
        earlier one, are removed."""
        self.refuse_occupied(force)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            for name in self.FOLDERS[self.kind]:
                (self.path / name).mkdir(exist_ok=True)
            for name in self.WRITES[self.kind]:
                (self.path / name).unlink(missing_ok=True)
        except OSError as exc:
            raise ScenarioError(f"cannot create run folder '{self.path}': {exc.strerror}; choose another --out") \
                from None

    def write_config(self, cfg: ScenarioConfig) -> None:
        """The resolved scenario, as the run starts."""
        write_atomic(self.config, yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))

    def read_config(self) -> ScenarioConfig:
        """The scenario as it was resolved when the run started, to resume the run."""
        from scenarios.loader import load_scenario

        if not self.config.is_file():
            raise ScenarioError(f"--resume: '{self.path}' holds no run (no config.yaml); give the folder of an "
                                f"interrupted run")
        return load_scenario(self.config)

    def write_state(self, status: str, slots: int, seed: int, error: str = "") -> None:
        """How the run ended (run.json): its status, the slots finished of those asked, its seed and error."""
        write_atomic(self.state, json.dumps({"status": status, "slots_done": len(read_table(self.slots)),
                                             "slots": slots, "seed": seed, "error": error}, indent=1) + "\n")

    def read_json(self, path: Path) -> dict[str, Any]:
        """run.json, train.json or another small JSON file of the folder."""
        return json.loads(path.read_text(encoding="utf-8"))

    def read_options(self) -> dict[str, Any]:
        """What a training was started with (train.json), to resume it."""
        try:
            return self.read_json(self.options)
        except FileNotFoundError:
            raise ScenarioError(f"--resume: '{self.path}' holds no training run (no train.json); start without "
                                f"--resume") from None
        except (OSError, ValueError) as exc:
            raise ScenarioError(f"--resume: cannot read '{self.options}' ({exc}); start again with --force") from None

    def write_options(self, options: Mapping[str, Any]) -> None:
        """What a training was started with (train.json): what --resume goes on with."""
        write_atomic(self.options, json.dumps(dict(options), indent=1) + "\n")


def num(value: str | None) -> float:
    """A CSV cell as a float; NaN when empty or not a number."""
    try:
        return float(value) if value not in (None, "", "None") else math.nan
    except ValueError:
        return math.nan
