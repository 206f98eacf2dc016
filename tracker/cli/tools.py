"""`tracker simulate` and `tracker replay`: tools that need no configuration."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from tracker.cli.common import fail


def register(commands: Any, configured: argparse.ArgumentParser) -> None:
    from tracker import simulator

    simulate = commands.add_parser("simulate", help="simulate devices against a running server")
    simulator.add_arguments(simulate)
    simulate.set_defaults(handler=simulator.run)

    replay_parser = commands.add_parser("replay", help="decode a capture file and print JSON lines")
    replay_parser.add_argument("--protocol", required=True)
    replay_parser.add_argument("file", help="one frame per line in hex, or raw bytes as captured")
    replay_parser.set_defaults(handler=replay)


def replay(args: argparse.Namespace) -> int:
    """Decode a capture; bad frames are reported on stderr and skipped."""
    import protocols

    data = Path(args.file).read_bytes()
    frames, stream = capture_frames(data)
    bad = []

    def report(index: int, error: protocols.ProtocolError) -> None:
        bad.append(index)
        print(f"tracker: frame {index + 1}: {error}", file=sys.stderr)

    try:
        results = protocols.replay(args.protocol, frames, stream=stream, errors=report)
    except ValueError as error:
        return fail(str(error))
    try:
        for records in results:
            for record in records:
                print(json.dumps(record, default=str))
        sys.stdout.flush()
    except BrokenPipeError:   # piped into `head`: stop quietly (Python's documented recipe)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 1 if bad else 0


def capture_frames(data: bytes) -> tuple[list[bytes], bool]:
    """Hex lines -> (frames, False); anything else -> ([raw bytes], True)."""
    try:
        lines = [line.strip() for line in data.decode("ascii").splitlines() if line.strip()]
        return [bytes.fromhex(line) for line in lines], False
    except ValueError:  # not ASCII hex: a raw capture of the byte stream
        return [data], True
