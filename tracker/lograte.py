"""Rate limiting of repeated log lines, so that a flood cannot flood the log.

A `RateLimitedLog` decides, per (kind, source), whether a line may be written:
`allow(kind, source)` is true for the first `lines_per_window` lines of that key in
a window of `window_s` seconds and false after that; the caller writes the line
with its own logger (so namespace, level and structured fields stay its own):

    if limiter.allow("bad frame", source):
        log.warn("... {remote} ...", remote=remote)

Kinds are short fixed strings ("bad frame", "idle close", ...); the source is the
remote host without port (`source_of`), so one misbehaving host cannot silence
the others.  Two further bounds hold against many sources at once (spoofed UDP
addresses): at most `kind_lines_per_window` lines per kind and window over all
sources, and at most `max_keys` keys are tracked (the oldest key is evicted
first; its suppressed count then goes into the kind's total).

Windows: a window starts with the first line after a quiet period and lasts
`window_s` seconds for every key at once.  When it ends, one line per key that had
lines suppressed says how many ("... 995 more suppressed"), for at most
`summary_lines` keys; the remaining keys of a kind share one line.  So a window
writes at most ``kind_lines_per_window + summary_lines + kinds`` lines, however
many lines were asked for.  The clock is injected (the reactor: ``seconds`` and
``callLater``), so tests drive windows with `twisted.internet.task.Clock`.
"""

from __future__ import annotations

from collections import OrderedDict

from twisted.logger import Logger

log = Logger()


def source_of(remote: str) -> str:
    """The host part of a "host:port" remote address ("10.0.0.9:40000" ->
    "10.0.0.9"; "::1:40000" -> "::1"); a string without a colon is returned whole."""
    host, colon, _ = remote.rpartition(":")
    return host if colon and host else remote


class RateLimitedLog:
    """Decides which repeated log lines are written; see the module docstring.

    `lines_per_window` lines per (kind, source) and `kind_lines_per_window` per
    kind in each window of `window_s` seconds; `max_keys` keys tracked at most;
    `summary_lines` per-key "suppressed" lines at the end of a window at most.
    Counters for health output: `suppressed_total` (lines refused since start).
    """

    def __init__(self, clock, *, lines_per_window: int = 5, window_s: float = 60.0,
                 kind_lines_per_window: int = 100, max_keys: int = 10_000,
                 summary_lines: int = 20) -> None:
        if lines_per_window < 1 or kind_lines_per_window < 1 or max_keys < 1:
            raise ValueError("RateLimitedLog limits must be at least 1: "
                             f"lines_per_window={lines_per_window}, "
                             f"kind_lines_per_window={kind_lines_per_window}, max_keys={max_keys}")
        if window_s <= 0:
            raise ValueError(f"RateLimitedLog window_s must be positive, not {window_s}")
        self._clock = clock
        self.lines_per_window = lines_per_window
        self.window_s = window_s
        self.kind_lines_per_window = kind_lines_per_window
        self.max_keys = max_keys
        self.summary_lines = summary_lines
        self.suppressed_total = 0
        # (kind, source) -> [written, suppressed] in this window, oldest key first
        self._keys: OrderedDict[tuple[str, str], list[int]] = OrderedDict()
        # kind -> [written, suppressed by the kind limit or by eviction]
        self._kinds: dict[str, list[int]] = {}
        self._window_end = None   # the delayed call that ends the window, if one is open

    def allow(self, kind: str, source: str) -> bool:
        """True if a line of `kind` about `source` may be written now (and counts it)."""
        if self._window_end is None:
            self._window_end = self._clock.callLater(self.window_s, self._end_window)
        key = (kind, source)
        counts = self._keys.get(key)
        if counts is None:
            self._evict()
            counts = self._keys[key] = [0, 0]
        kind_counts = self._kinds.setdefault(kind, [0, 0])
        if counts[0] >= self.lines_per_window:
            counts[1] += 1
        elif kind_counts[0] >= self.kind_lines_per_window:
            kind_counts[1] += 1
        else:
            counts[0] += 1
            kind_counts[0] += 1
            return True
        self.suppressed_total += 1
        return False

    def flush(self) -> None:
        """End the current window now: write the suppressed counts (at shutdown)."""
        if self._window_end is not None and self._window_end.active():
            self._window_end.cancel()
        self._end_window()

    def _evict(self) -> None:
        while len(self._keys) >= self.max_keys:
            (kind, _), (_, suppressed) = self._keys.popitem(last=False)
            if suppressed:
                self._kinds.setdefault(kind, [0, 0])[1] += suppressed

    def _end_window(self) -> None:
        self._window_end = None
        keys, self._keys = self._keys, OrderedDict()
        kinds, self._kinds = self._kinds, {}
        left = {kind: counts[1] for kind, counts in kinds.items()}
        summaries = 0
        for (kind, source), (_, suppressed) in keys.items():
            if not suppressed:
                continue
            if summaries < self.summary_lines:
                summaries += 1
                log.warn("{kind} from {source}: {count} more log lines suppressed in the "
                         "last {window_s} s", kind=kind, source=source, count=suppressed,
                         window_s=self.window_s)
            else:
                left[kind] = left.get(kind, 0) + suppressed
        for kind, count in left.items():
            if count:
                log.warn("{kind}: {count} more log lines suppressed in the last {window_s} s "
                         "(other sources together)", kind=kind, count=count,
                         window_s=self.window_s)
