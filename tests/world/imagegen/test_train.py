import subprocess
import sys

from world.imagegen.pipeline import ShippedModel, load_judge


def test_training_entry_point_runs_a_tiny_configuration(tmp_path):
    out = tmp_path / "weights"
    cmd = [sys.executable, "-m", "world.imagegen.train", "--tiny", "--out", str(out), "--steps", "3",
           "--judge-steps", "2", "--ae-steps", "2", "--batch", "4", "--threads", "1", "--captions", "300"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "step      2" in done.stdout
    model = ShippedModel(out)
    assert model.manifest.training["steps"] == 3
    assert model.manifest.spec.block_out_channels == (8, 16)
    assert model.manifest.spec.latent_scale > 0
    assert set(model.manifest.sha256) == {"denoiser.safetensors", "autoencoder.safetensors", "judge.safetensors"}
    load_judge(out)


def test_training_refuses_bad_numbers(tmp_path):
    cmd = [sys.executable, "-m", "world.imagegen.train", "--out", str(tmp_path), "--steps", "0"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 2
    assert "--steps must be at least 1, got 0" in done.stderr
