"""Fixtures of the image-generation tests: the shipped model and judge, loaded once per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def shipped_model():
    from world.imagegen.pipeline import ShippedModel

    return ShippedModel(threads=1)


@pytest.fixture(scope="session")
def shipped_judge():
    from world.imagegen.pipeline import load_judge

    return load_judge()


@pytest.fixture(scope="session")
def encoder(shipped_model):
    return shipped_model.encoder
