"""Fixtures of the API tests (the shared ones, `server`, `org`, `contract`, are in tests/conftest.py)."""

import pytest


@pytest.fixture(scope="module")
def quarantine(server):
    """An organisation of the module's that only ever receives bad input: it must stay empty.

    Tests also check it right after each bad request; this last check catches a late write.
    """
    org = server.org()
    yield org
    org.assert_empty()
