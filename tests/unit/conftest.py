"""Unit tier: pure code — domain rules, routing, the calendar, the house rules — with no server at
all.  A unit test that asks for the servers fails here instead of quietly starting them."""

import pytest


@pytest.fixture(scope="session")
def stack() -> None:
    pytest.fail("unit tests start no server: move this test to tests/integration/")


@pytest.fixture
def settings() -> None:
    pytest.fail("unit tests start no server: move this test to tests/integration/")
