"""The shipped weights: integrity checks, and a real assertion on what they draw."""

import shutil

import numpy as np
import pytest

from world.imagegen import quality
from world.imagegen.cooperative import CooperativeDenoiser, Group, Job
from world.imagegen.model import DENOISER_FILE, SHIPPED_DIR, WeightsError
from world.imagegen.pipeline import ShippedModel, load_image_model, torch_device
from world.imagegen.shapes import parse
from world.imagegen.text import PromptError

# A small fixed set, in wordings the training never saw verbatim.
PROMPTS = [
    "a red circle on a blue background",
    "yellow square, plain black backdrop",
    "a green triangle against white",
    "a white box on a red background",
    "a blue round dot against yellow",
    "black pyramid on plain green",
    "a yellow disc on a blue background",
    "a red block against white",
]


def test_ten_steps_draw_most_prompts_right(shipped_model, shipped_judge):
    """Shape and both colours right for at least 6 of the 8 prompts at 10 DDIM steps (tolerance: 2 misses)."""
    denoiser = CooperativeDenoiser(shipped_model)
    jobs = [Job(i, 7 + i, 10, 10) for i in range(len(PROMPTS))]
    out = denoiser.run(jobs, [Group((i,), 0) for i in range(len(jobs))], shipped_model.conditions(PROMPTS))
    verdicts = quality.judge(shipped_judge, out.images, [parse(p) for p in PROMPTS])
    right = [v.right["shape"] and v.right["fg"] and v.right["bg"] for v in verdicts]
    assert sum(right) >= 6, dict(zip(PROMPTS, right))


def test_two_steps_are_visibly_worse_than_fifty(shipped_model, shipped_judge):
    denoiser = CooperativeDenoiser(shipped_model)
    cond = shipped_model.conditions(PROMPTS)
    scores = {}
    for steps in (2, 50):
        jobs = [Job(i, 7 + i, steps, steps) for i in range(len(PROMPTS))]
        out = denoiser.run(jobs, [Group((i,), 0) for i in range(len(jobs))], cond)
        verdicts = quality.judge(shipped_judge, out.images, [parse(p) for p in PROMPTS])
        scores[steps] = np.mean([v.fidelity for v in verdicts]), np.mean([v.sharpness for v in verdicts])
    assert scores[50][0] > scores[2][0]
    assert scores[50][1] > scores[2][1]


def test_corrupted_weights_are_refused(tmp_path):
    folder = tmp_path / "weights"
    shutil.copytree(SHIPPED_DIR, folder)
    data = bytearray((folder / DENOISER_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / DENOISER_FILE).write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="corrupted: sha256"):
        ShippedModel(folder)


def test_missing_weights_and_folders_are_named(tmp_path):
    folder = tmp_path / "weights"
    shutil.copytree(SHIPPED_DIR, folder)
    (folder / DENOISER_FILE).unlink()
    with pytest.raises(WeightsError, match=f"{DENOISER_FILE} is missing"):
        ShippedModel(folder)
    with pytest.raises(WeightsError, match="does not exist"):
        load_image_model(str(tmp_path / "nowhere"))
    with pytest.raises(WeightsError, match="not a diffusers pipeline folder"):
        load_image_model(str(tmp_path))


def test_unknown_devices_are_refused():
    with pytest.raises(WeightsError, match="unknown device 'gpu0'"):
        torch_device("gpu0")
    with pytest.raises(WeightsError, match="unknown dtype"):
        ShippedModel(dtype="float8")


def test_bad_prompts_are_refused(encoder):
    with pytest.raises(PromptError, match="empty"):
        encoder.encode(["a red circle on blue", "   "])
    with pytest.raises(PromptError, match="tokens"):
        encoder.encode(["red circle " * 100])
