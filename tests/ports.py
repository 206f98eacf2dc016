"""Free loopback ports for the servers the tests start.

A port found by binding port 0 comes from the kernel's ephemeral range, the same
range outgoing connections (to PostgreSQL, to the fake gateways) take their local
ports from; and closing the probe lets the kernel hand the same port out again, so
two calls can return one port. Both have broken a CI run ("Address already in use").
So ports are drawn below the ephemeral range, checked free for TCP and UDP, and
never handed out twice by one test process.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_handed_out: set[int] = set()
_LOWEST = 10_000


def _ephemeral_start() -> int:
    """The first port of the kernel's ephemeral range (32768 when unknown)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def _bindable(port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_port() -> int:
    """A loopback port free for TCP and UDP a moment ago, below the ephemeral range,
    and not returned before by this process."""
    highest = max(_ephemeral_start(), _LOWEST + 1_000)
    while True:
        port = random.randrange(_LOWEST, highest)
        if port not in _handed_out and _bindable(port):
            _handed_out.add(port)
            return port
