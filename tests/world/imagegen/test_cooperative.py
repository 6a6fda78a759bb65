import pytest
import torch

from world.imagegen.cooperative import (CooperativeDenoiser, DenoiseError, Group, Job, cluster, make_groups, plan,
                                        server_evaluations)
from world.imagegen.schedulers import SCHEDULERS


@pytest.mark.parametrize("n,steps,k", [(8, 50, 0), (8, 50, 10), (8, 50, 25), (8, 50, 40), (3, 7, 7), (2, 1, 1)])
def test_plan_counts_k_plus_n_times_t_minus_k(n, steps, k):
    jobs = [Job(i, i, steps, steps) for i in range(n)]
    groups = [Group(tuple(range(n)), k)] if k else [Group((i,), 0) for i in range(n)]
    assert server_evaluations(plan(jobs, groups)) == k + n * (steps - k)      # k = 0: n T


def test_real_run_makes_exactly_the_planned_unet_evaluations(shipped_model):
    n, steps, k = 4, 10, 4
    calls = []
    real_predict = shipped_model.predict

    def counting(x, t, cond):
        calls.append(len(x))
        return real_predict(x, t, cond)

    shipped_model.predict = counting
    try:
        jobs = [Job(i, i, steps, steps) for i in range(n)]
        prompts = ["a red striped circle on a blue background", "a small red striped circle on a blue background",
                   "a red striped circle on the left on a blue background", "a large red striped circle on blue"]
        out = CooperativeDenoiser(shipped_model).run(jobs, [Group(tuple(range(n)), k)],
                                                     shipped_model.conditions(prompts))
    finally:
        shipped_model.predict = real_predict
    assert sum(calls) == k + n * (steps - k) == out.evaluations["server"]
    assert calls == [1] * k + [n] * (steps - k)        # prefix alone, then every branch in one batched call


def test_k_zero_equals_independent_generation(shipped_model):
    prompts = ["a red circle on a blue background", "yellow square on plain black", "a green triangle against white"]
    cond = shipped_model.conditions(prompts)
    denoiser = CooperativeDenoiser(shipped_model)
    jobs = [Job(i, 100 + i, 12, 12) for i in range(3)]
    together = denoiser.run(jobs, make_groups(jobs, [[0, 1, 2]], 0.0), cond)
    for i in range(3):
        alone = denoiser.run([Job(0, 100 + i, 12, 12)], [Group((0,), 0)], cond[i:i + 1])
        assert torch.allclose(together.latents[i], alone.latents[0], atol=1e-4)
        assert abs(together.images[i].astype(int) - alone.images[0].astype(int)).max() <= 1


def test_sharing_every_step_gives_every_member_the_same_image(shipped_model):
    prompts = ["a red circle on a blue background", "a small red disc on a blue background"]
    jobs = [Job(i, 5 + i, 6, 6) for i in range(2)]
    out = CooperativeDenoiser(shipped_model).run(jobs, [Group((0, 1), 6)], shipped_model.conditions(prompts))
    assert (out.images[0] == out.images[1]).all()
    assert out.evaluations["server"] == 6


def test_handoff_sends_latents_and_counts_phone_steps(shipped_model):
    prompts = ["a red circle on a blue background"] * 3
    jobs = [Job(0, i, 10, s) for i, s in enumerate((10, 6, 3))]
    groups = make_groups(jobs, [[0, 1, 2]], 0.5)
    assert groups[0].shared == 3                      # capped by the smallest server share
    out = CooperativeDenoiser(shipped_model).run(jobs, groups, shipped_model.conditions(prompts))
    assert out.handoff_latents[0] is None
    assert out.handoff_latents[1].shape == (1, *shipped_model.latent_shape)
    assert out.evaluations == {"server": 3 + (10 - 3) + (6 - 3), "phone": 4 + 7}


def test_clustering_groups_near_synonyms_and_separates_unrelated(encoder):
    prompts = ["a red striped circle on a dotted blue background",
               "a yellow triangle on a wavy black background",
               "dotted blue backdrop with a red striped circle",
               "a small red striped circle against dotted blue",
               "green checked box on plain white"]
    groups = cluster(encoder.encode(prompts), threshold=0.75)
    assert [0, 2, 3] in groups
    assert [1] in groups and [4] in groups


@pytest.mark.parametrize("name", SCHEDULERS)
def test_every_scheduler_draws_finite_images_and_branches_from_a_shared_prefix(name):
    """Each sampler runs a shared prefix, then branches (DPM++ carries its history into every branch)."""
    from world.imagegen.pipeline import ShippedModel

    model = ShippedModel(threads=1, scheduler=name)
    prompts = ["a red striped circle on a dotted blue background", "dotted blue backdrop with a red striped circle"]
    jobs = [Job(i, 3 + i, 6, 6) for i in range(2)]
    out = CooperativeDenoiser(model).run(jobs, [Group((0, 1), 2)], model.conditions(prompts))
    assert torch.isfinite(out.latents).all()
    assert out.images.shape == (2, 48, 48, 3) and out.images.std() > 10     # not a flat or blown-out image
    assert out.evaluations["server"] == 2 + 2 * 4


def test_bad_steps_and_shares_are_named():
    with pytest.raises(DenoiseError, match="steps T = 0"):
        Job(0, 0, 0, 0)
    with pytest.raises(DenoiseError, match="server_steps = 12 is outside"):
        Job(0, 0, 10, 12)
    with pytest.raises(DenoiseError, match="shared fraction 1.5"):
        make_groups([Job(0, 0, 10, 10)], [[0]], 1.5)
    with pytest.raises(DenoiseError, match="threshold 2"):
        cluster(torch.zeros(1, 3).numpy(), 2)
