"""Fixtures shared by the web tests."""

import pytest
from twisted.logger import globalLogPublisher


@pytest.fixture(autouse=True)
def logged_failures():
    """Every test also asserts that nothing was logged as a failure (unless it clears them)."""
    events = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)
    failures = [event for event in events if "log_failure" in event]
    assert not failures, failures[0]["log_failure"].getTraceback()
