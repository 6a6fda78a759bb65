"""Shared test fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from world.llm import EmbeddedServer


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
