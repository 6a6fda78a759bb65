"""Shared test fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from world.llm import EmbeddedServer


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with tests of the real model first, each file's tests kept together and in order: they are the
    longest files, and with two workers (`-n 2 --dist loadfile`) a long file started last leaves one core idle
    while the other finishes it."""
    heavy = {item.path for item in items if item.get_closest_marker("llm")}
    items.sort(key=lambda item: item.path not in heavy)    # stable: files and their tests keep their order


# --- LLM (tests marked `llm`; deselect them with `-m "not llm"`) ---------------------------------


@pytest.fixture(scope="session")
def llm_server(pytestconfig: pytest.Config) -> Iterator[EmbeddedServer]:
    """The real embedded model (default LlmConfig), loaded once per session; fails if `make setup` was not run."""
    # imported here so that sessions without llm tests do not pay for importing LangChain and llama.cpp
    from world.llm import EmbeddedServer, LlmConfig, model_file

    cfg = LlmConfig()
    path = model_file(cfg.model, pytestconfig.rootpath / cfg.cache_dir)
    server = EmbeddedServer(path, cfg.model, cfg)
    yield server
    server.close()


# --- Ray (the `ray` extra, installed by `make setup`) ----------------------------------------------


@pytest.fixture(scope="session")
def ray_local() -> Iterator[None]:
    """A local Ray of 2 CPUs for the whole session, as a research group's laptop would start it."""
    import ray

    from world.ray_feedback import ensure_ray

    ensure_ray(num_cpus=2)
    yield
    ray.shutdown()
