"""RateLimitedLog: per (kind, source) and per kind limits, window summaries, bounded keys."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent

from tracker.lograte import RateLimitedLog, source_of


def summaries(events) -> list[str]:
    return [formatEvent(e) for e in events if e.get("log_namespace") == "tracker.lograte"]


def test_a_key_gets_n_lines_per_window_then_one_suppressed_count():
    clock = Clock()
    limiter = RateLimitedLog(clock, lines_per_window=5, window_s=60)
    with capturedLogs() as events:
        allowed = [limiter.allow("bad frame", "10.0.0.1") for _ in range(1000)]
        assert allowed.count(True) == 5 and allowed[:5] == [True] * 5
        assert summaries(events) == []          # nothing until the window ends
        clock.advance(60)
    (line,) = summaries(events)
    assert "bad frame from 10.0.0.1: 995 more log lines suppressed" in line
    assert limiter.suppressed_total == 995


def test_another_source_is_still_logged():
    limiter = RateLimitedLog(Clock(), lines_per_window=2)
    for _ in range(100):
        limiter.allow("bad frame", "10.0.0.1")
    assert limiter.allow("bad frame", "10.0.0.2")
    assert limiter.allow("idle close", "10.0.0.1")   # another kind: its own budget


def test_a_new_window_allows_lines_again_and_a_quiet_key_writes_no_summary():
    clock = Clock()
    limiter = RateLimitedLog(clock, lines_per_window=1, window_s=10)
    with capturedLogs() as events:
        assert limiter.allow("k", "a") and not limiter.allow("k", "a")
        limiter.allow("k", "b")                    # one line, nothing suppressed
        clock.advance(10)
        assert limiter.allow("k", "a")
        clock.advance(10)
    lines = summaries(events)
    assert len(lines) == 1 and "k from a: 1 more" in lines[0]
    assert clock.getDelayedCalls() == []        # no timer while quiet


def test_the_kind_limit_holds_against_many_sources():
    """Spoofed sources each below their own limit still cannot flood the log."""
    clock = Clock()
    limiter = RateLimitedLog(clock, lines_per_window=5, kind_lines_per_window=50)
    with capturedLogs() as events:
        allowed = sum(limiter.allow("bad frame", f"10.0.{i // 256}.{i % 256}")
                      for i in range(5000))
        clock.advance(60)
    assert allowed == 50
    (line,) = summaries(events)
    assert "bad frame: 4950 more log lines suppressed" in line


def test_keys_are_bounded_and_evicted_counts_are_not_lost():
    clock = Clock()
    limiter = RateLimitedLog(clock, lines_per_window=1, max_keys=3)
    with capturedLogs() as events:
        for source in ("a", "b", "c", "d", "e"):
            limiter.allow("k", source)
            limiter.allow("k", source)             # one suppressed each
        assert len(limiter._keys) == 3
        clock.advance(60)
    lines = summaries(events)
    assert sum("1 more" in line for line in lines) == 3          # c, d, e by name
    assert any("k: 2 more log lines suppressed" in line for line in lines)   # a, b evicted


def test_summary_lines_per_window_are_bounded():
    clock = Clock()
    limiter = RateLimitedLog(clock, lines_per_window=1, summary_lines=3,
                             kind_lines_per_window=1000)
    with capturedLogs() as events:
        for i in range(100):
            limiter.allow("k", f"s{i}")
            limiter.allow("k", f"s{i}")
        clock.advance(60)
    lines = summaries(events)
    assert len(lines) == 4
    assert "k: 97 more log lines suppressed" in lines[-1]


def test_flush_ends_the_window_now():
    clock = Clock()
    limiter = RateLimitedLog(clock, lines_per_window=1)
    limiter.allow("k", "a")
    limiter.allow("k", "a")
    with capturedLogs() as events:
        limiter.flush()
    assert len(summaries(events)) == 1 and clock.getDelayedCalls() == []
    assert limiter.allow("k", "a")


@pytest.mark.parametrize("remote, source", [
    ("10.0.0.9:40000", "10.0.0.9"), ("::1:40000", "::1"), ("2001:db8::5:80", "2001:db8::5"),
    ("10.0.0.9", "10.0.0.9"), ("10.0.0.9:", "10.0.0.9"), ("", ""),
])
def test_source_is_the_host_without_port(remote, source):
    assert source_of(remote) == source


def test_limits_must_be_positive():
    with pytest.raises(ValueError, match="lines_per_window=0"):
        RateLimitedLog(Clock(), lines_per_window=0)
    with pytest.raises(ValueError, match="window_s"):
        RateLimitedLog(Clock(), window_s=0)
