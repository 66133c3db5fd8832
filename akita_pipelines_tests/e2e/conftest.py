"""One real stack per test session, shared by the stack test and the browser test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from akita_pipelines_tests.e2e.stack import Stack, running_stack


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    with running_stack() as running:
        yield running
