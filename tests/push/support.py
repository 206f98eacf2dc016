"""What the channel tests share: a clock to set by hand, a port nothing listens on, log capture.

    clock = FakeClock()                  # clock() == T0 until a test moves clock.now
    n = XiaomiNotifier({... "base_url": closed_url()})   # connecting is refused
    with logged_text() as log:
        n.send(target, message)
    assert TOKEN not in log.text
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

from twisted.logger import formatEvent, globalLogPublisher

from tests.ports import free_port

T0 = 1_700_000_000.0          # Unix seconds: Tue, 14 Nov 2023 22:13:20 +0000


class FakeClock:
    """A clock to inject into a notifier or fake: calling it returns ``now`` (Unix seconds)."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def closed_port() -> int:
    """A loopback TCP port nothing listened on a moment ago (`tests.ports.free_port`)."""
    return free_port()


def closed_url() -> str:
    """``http://127.0.0.1:PORT`` on a `closed_port`: connecting to it is refused."""
    return f"http://127.0.0.1:{closed_port()}"


@dataclasses.dataclass
class LoggedText:
    """The Twisted log events published inside `logged_text`."""

    events: list[dict] = dataclasses.field(default_factory=list)

    @property
    def text(self) -> str:
        """Each event formatted and as its repr, one a line (so fields the format leaves out count)."""
        return "\n".join(formatEvent(e) + repr(e) for e in self.events)


@contextlib.contextmanager
def logged_text() -> Iterator[LoggedText]:
    """Collect what is logged through Twisted's global publisher while the block runs."""
    log = LoggedText()
    observer = log.events.append
    globalLogPublisher.addObserver(observer)
    try:
        yield log
    finally:
        globalLogPublisher.removeObserver(observer)
