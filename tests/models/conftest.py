"""Fixtures of the model tests: the bundled models, loaded once per module."""
from __future__ import annotations

import pytest

from mlbook.models import loading


@pytest.fixture(scope="module")
def smollm2():
    return loading.load_causal_lm("smollm2")


@pytest.fixture(scope="module")
def e5():
    return loading.load_encoder("e5-small")


@pytest.fixture(scope="module")
def minilm():
    return loading.load_encoder("minilm", device="auto")
