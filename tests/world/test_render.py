"""The GPU servers' cooperative engine inside the city block: profiled and real."""

import math

import numpy as np
import pytest

from agents.request import RequestState
from policies.heuristics import FixedPolicy
from tests.shipped import ROOT, shipped
from world.city import CityBlock
from world.imagegen.render import CooperativeRender, QualityTable, shipped_latent_bits
from world.imagegen.schedulers import SCHEDULERS

SILENT = {"feedback": {"mode": "silent"}}
RUSH_HOUR = ROOT / "scenarios" / "rush_hour.yaml"


def run(cfg, slots, policy=None):
    """Step the block, then let every allocated request finish; the finished requests."""
    model = CityBlock(cfg, policy or FixedPolicy())
    done = []
    for _ in range(slots):
        model.step()
        done.extend(model.completed)
    model.completed = []
    model.env.run(until=model.env.now + 300)
    done.extend(model.completed)
    return model, [r for r in done if r.state in (RequestState.DELIVERED, RequestState.RATED)]


def test_profiled_sharing_saves_server_steps():
    # rush hour: nine in ten requests are variations of the trending picture, and batches fill up
    model, done = run(shipped(SILENT, path=RUSH_HOUR), 20)
    engine = model.gpu_servers[0].compute
    assert isinstance(engine, CooperativeRender)
    shared = [r for r in done if r.shared_steps > 0]
    assert shared, "no request shared a prefix in a busy block"
    assert engine.clusters_formed > 0
    # every evaluation saved is a shared step that one trajectory ran for several requests
    assert engine.shared_steps_saved == sum(r.server_steps for r in done) - engine.evaluations
    assert engine.shared_steps_saved > 0
    for r in done:
        assert 0 <= r.fidelity <= 1 and 0 <= r.sharpness <= 1


def test_sharing_off_costs_every_step():
    model, done = run(shipped({**SILENT, "users": {"count": 40}, "imagegen": {"share": False}}), 20)
    assert all(not r.shared_steps for r in done)


def test_profile_quality_falls_with_a_larger_shared_fraction():
    table = QualityTable()
    assert table.assess(50, 0.0)[1] > table.assess(50, 1.0)[1]
    assert sum(table.assess(20, 0.1)) >= sum(table.assess(20, 0.8))


@pytest.mark.parametrize("name", SCHEDULERS)
def test_every_scheduler_has_a_profile_table_that_rises_with_steps(name):
    table = QualityTable(scheduler=name)
    assert sum(table.assess(5)) < sum(table.assess(50))     # detail + fidelity


def test_real_rendering_keeps_images_and_measures_them():
    cfg = shipped({**SILENT, "users": {"count": 4, "request_rate_per_s": 0.3},
                   "base_station": {"max_steps": 10, "min_steps": 5},
                   "imagegen": {"render": "real"}})
    model, done = run(cfg, 6)
    assert done
    for r in done:
        assert r.image.shape == (48, 48, 3) and r.image.dtype == np.uint8
        assert 0 <= r.fidelity <= 1 and not math.isnan(r.sharpness)
    # the same fields as a profiled run
    _, profiled = run(cfg.model_copy(update={"imagegen": cfg.imagegen.model_copy(update={"render": "profile"})}), 6)
    assert set(done[0].as_record()) == set(profiled[0].as_record())


def test_phone_finish_sends_latents_not_the_image():
    _, done = run(shipped({**SILENT, "users": {"count": 10}}), 10, FixedPolicy(steps=1.0, server_share=0.5))
    handed = [r for r in done if r.device_steps > 0]
    assert handed
    for r in handed:
        assert r.payload_bits == shipped_latent_bits()
        assert r.tx_s == pytest.approx(shipped_latent_bits() / r.rate_bps)


def test_real_rendering_draws_and_judges_images_finished_on_the_phone(tmp_path, monkeypatch):
    # every step on the phone: the GPU runs nothing, yet every delivered image is drawn by the model, judged,
    # rated by its persona and shown on the image sheet (no placeholder tile)
    import scenarios.assemble as assemble_module
    import scenarios.run as run_module
    from scenarios.sheet import SheetSampler

    monkeypatch.setattr(assemble_module, "FixedPolicy", lambda: FixedPolicy(steps=1.0, server_share=0.0))

    cfg = shipped({"users": {"count": 6, "request_rate_per_s": 0.3}, "base_station": {"max_steps": 10, "min_steps": 5},
                   "feedback": {"mode": "learned", "learned_live_share": 0.0}, "imagegen": {"render": "real"}})
    sampler = SheetSampler()
    finished: list = []
    run_module.run_scenario(cfg, steps=12, out=tmp_path / "run",
                 observer=lambda run: (sampler.observe(run), finished.extend(run.model.completed)), log=lambda line: None)
    assert finished and all(r.server_steps == 0 and r.device_steps == 10 for r in finished)
    profiled = CityBlock(cfg, FixedPolicy()).quality.assess(10)
    for r in finished:
        assert r.image.shape == (48, 48, 3) and r.image.dtype == np.uint8
        assert r.seen, "the judge did not look at the image"
        assert (r.sharpness, r.fidelity) != profiled        # measured on the image, not the fallback curve
    cells = sampler.cells()
    assert cells and all(c.image is not None for c in cells)
    assert any(c.rating.endswith("/5") for c in cells)
