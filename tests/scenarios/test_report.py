"""The end-of-run report: plots, the image sheet and the summary, drawn from a run folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agents.persona import TRAITS, persona_type
from scenarios.plots import energy_figure, latency_parts, plot_learning_curve
from scenarios.report import summary_lines, write_report
from scenarios.sheet import PLACEHOLDER, SheetCell, image_sheet
from scenarios.tables import read_table
from scenarios.run import run_scenario
from tests.shipped import shipped
from world.config import ScenarioConfig

PNG = b"\x89PNG"


def silent() -> ScenarioConfig:
    return shipped({"feedback": {"mode": "silent"}})


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "r"
    run_scenario(silent(), steps=40, out=out, log=lambda line: None)
    return out


def test_persona_type_is_the_most_pronounced_trait() -> None:
    average = dict.fromkeys(TRAITS, 0.5)
    assert persona_type(average) == "average"
    assert persona_type({**average, "neuroticism": 0.9, "openness": 0.7}) == "anxious (+N)"
    assert persona_type({**average, "agreeableness": 0.1}) == "critical (-A)"


def test_report_writes_plots_and_sheet_and_skips_the_learning_curve(run_folder: Path) -> None:
    report = write_report(run_folder, [], policy="fixed", budget_j=300.0, wall_s=1.0)
    names = {p.name for p in report.files}
    assert names == {"qoe_by_persona.png", "energy.png", "latency.png", "image_sheet.png"}
    for p in report.files:
        assert p.read_bytes()[:4] == PNG
    assert any("no learner" in s for s in report.skipped)
    lines = summary_lines(report)
    assert any(line.startswith("requests: ") for line in lines)
    assert any(line.startswith("QoE: no ratings") for line in lines)
    assert all(line.isascii() and line.isprintable() for line in lines)


def test_a_learner_in_a_run_is_not_called_a_heuristic(run_folder: Path) -> None:
    report = write_report(run_folder, [], policy="gddpg", budget_j=300.0, wall_s=1.0)
    assert any("learner acting as loaded; a run does not train it" in s for s in report.skipped)
    assert ("policy", "gddpg (not training)") in report.rows
    assert not any("heuristic" in s for s in report.skipped)


def test_latency_parts_add_up_to_the_wait(run_folder: Path) -> None:
    rows = [r for r in read_table(run_folder / "requests.csv") if r["delivered_s"]]
    assert rows
    for r in rows:
        parts = latency_parts(r)
        assert parts is not None and min(parts.values()) >= 0
        assert sum(parts.values()) == pytest.approx(float(r["wait_s"]))


def test_image_sheet_takes_an_optional_image_per_cell(tmp_path: Path) -> None:
    image = np.zeros((32, 32, 3), dtype=np.uint8)
    image[8:24, 8:24, 0] = 255
    cells = [SheetCell("a red square", "50 (GPU 50, phone 0)", "Ana: Lovely.", "5/5", image=image),
             SheetCell("a blue circle", "20 (GPU 10, phone 10)", "Ben: Too blurry.", "2/5")]
    assert image_sheet(cells, tmp_path / "sheet.png").read_bytes()[:4] == PNG
    assert "not generated" in PLACEHOLDER
    with pytest.raises(ValueError, match="H x W x 3"):
        SheetCell("p", "1", "f", "-", image=np.zeros((4, 4)))


def test_learning_curve_when_a_learner_reports_history(tmp_path: Path) -> None:
    history = [{"episode": k, "reward": 0.1 * k, "actor_loss": 1.0 / (k + 1)} for k in range(5)]
    assert plot_learning_curve(history, tmp_path / "lc.png").read_bytes()[:4] == PNG


def test_energy_plot_sets_the_budget_against_what_it_covers() -> None:
    """Phones' energy (outside the budget) gets its own panel: the budget line faces GPU + radio only."""
    slots = [{"time_s": str(t), "gpu_energy_j": "60", "tx_energy_j": "5", "device_energy_j": "300",
              "over_budget_j": "0"} for t in range(1, 11)]
    service, phones = energy_figure(slots, budget_j=150.0).axes
    labels = [t.get_text() for t in service.get_legend().get_texts()]
    assert labels[:2] == ["GPU (600 J)", "radio (50 J)"] and labels[2].startswith("budget 150")
    assert [t.get_text() for t in phones.get_legend().get_texts()] == ["phones (3,000 J)"]
    assert "0 of 10 slots over budget" in service.get_title()
    assert service.get_ylim()[1] < 300      # the phones' 300 J a slot are not stacked against the budget


def test_a_rating_without_words_says_who_gave_it() -> None:
    from agents.feedback import Feedback
    from agents.request import ImageRequest
    from scenarios.cells import request_cells

    r = ImageRequest(request_id=1, user_id=1, persona="Ana (+N)", prompt="a red circle", topic="t", issued_s=0.0,
                     server_steps=5, device_steps=0, power_w=0.5, delivered_s=1.0)
    r.feedback = Feedback("", 4, 3.8, "", 0.0, "learned", valid=True)    # the learned persona model's answer
    assert SheetCell.from_request(r).feedback == "Ana (+N): (no words: rated by the learned persona model)"
    assert str(request_cells(r)[-1]) == "(no words: rated by the learned persona model)"


def test_the_summary_counts_every_answer_of_the_model_those_after_the_last_slot_too(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import scenarios.assemble as assemble_module
    from tests.world.scripted import ScriptedBackend

    monkeypatch.setattr(assemble_module, "build_backends", lambda cfg, n: ([ScriptedBackend()], lambda: None))
    cfg = shipped({"feedback": {"mode": "live", "cache": str(tmp_path / "answers.sqlite")}})
    for run, from_cache in (("first", False), ("again", True)):     # the same run again: every answer cached
        run_scenario(cfg, steps=20, seed=4, out=tmp_path / run, log=lambda line: None)
        requests = read_table(tmp_path / run / "requests.csv")
        answered = sum(r["feedback_valid"] == "True" for r in requests)
        assert answered == len(requests) and any(int(r["finished_slot"]) > 20 for r in requests)
        rows = dict(write_report(tmp_path / run, [], policy="fixed", budget_j=300.0).rows)
        calls, hits = (0, answered) if from_cache else (answered, 0)
        assert rows["language model"].startswith(f"{calls} calls, {hits} cache hits, 0 invalid, 0 failed"), rows
