"""A run folder's CSV tables and the folder itself, as `run`, `train`, `sweep` and `report` share them.

Tables are written as whole rows (one write, then a flush: `csv_text` builds the text) and read back as
rows of strings (`read_table`), a last line cut off by a crash being no row. `prepare_run_dir` makes a
run folder, refusing one that holds a run unless told to replace it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from agents.persona import TRAITS
from agents.request import ImageRequest
from scenarios.loader import ScenarioError

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


def refuse_occupied(out: Path, force: bool, go_on: str = "") -> None:
    """Refuse a run folder that is a file, or that holds a run and is not to be replaced (`go_on`: how its
    run could be continued instead, for the message)."""
    if out.exists() and not out.is_dir():
        raise ScenarioError(f"--out '{out}' is a file, not a folder; choose another path")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ScenarioError(f"run folder '{out}' already holds files; choose another --out, {go_on}"
                            f"or pass --force to replace its run")


def prepare_run_dir(out: Path, force: bool, files: Sequence[str], folders: Sequence[str] = (),
                    go_on: str = "") -> Path:
    """Create the run folder (and `folders` in it), refusing one that holds a run unless `force` (see
    `refuse_occupied`); the run's own `files` left by an earlier run are removed."""
    refuse_occupied(out, force, go_on)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name in folders:
            (out / name).mkdir(exist_ok=True)
        for name in files:
            (out / name).unlink(missing_ok=True)
    except OSError as exc:
        raise ScenarioError(f"cannot create run folder '{out}': {exc.strerror}; choose another --out") from None
    return out
