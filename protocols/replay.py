"""The conformance interface: feed frames to one decoder session, get records.

`replay(name, frames, options)` behaves as one connection of protocol `name`
on which every device id is known (see DESIGN.md, "Conformance interface").
It backs `tracker replay` and the corpus tests.  This is the only place in
`protocols` that may read the clock, and only when the caller passes no
`now` (decoders need it for status records without a time of their own and
for time replies).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from protocols.base import Position, ProtocolError
from protocols.records import position_record


def replay(name: str, frames: Iterable[Any], options: Mapping[str, Any] | None = None, *,
           stream: bool = False, now: dt.datetime | None = None,
           errors: str | Callable[[int, ProtocolError], object] = "raise",
           ) -> list[list[dict[str, Any]]]:
    """Decode `frames` on ONE new session of protocol `name`.

    Each item is one frame as the protocol's framer delivers it (bytes, or an
    HttpRequest for HTTP protocols), or with `stream=True` raw network bytes
    in any chunking.  Returns, per item, the position records decoded from it
    (see `protocols.records.position_record`).  `now` defaults to the current
    UTC time.  `errors="skip"` turns a ProtocolError into an empty list for
    that item instead of raising (useful on captures with damaged frames); a
    callable does the same after being called with (item index, error).
    """
    from protocols.registry import get_codec  # registry imports the codecs

    if not callable(errors) and errors not in ("raise", "skip"):
        raise ValueError(f"errors must be 'raise', 'skip' or a callable, not {errors!r}")
    session = get_codec(name).new_session(options)
    when = now or dt.datetime.now(dt.UTC)
    results: list[list[dict[str, Any]]] = []
    for index, item in enumerate(frames):
        try:
            decoded = (session.receive_data(item, when) if stream
                       else [session.decode_frame(item, when)])
        except ProtocolError as error:
            if errors == "raise":
                raise
            if callable(errors):
                errors(index, error)
            decoded = []
        results.append([
            position_record(message, name, session.unique_id)
            for frame in decoded for message in frame.messages
            if isinstance(message, Position)])
    return results


__all__ = ["replay"]
