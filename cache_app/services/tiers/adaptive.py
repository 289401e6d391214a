"""One streamed GET, and ranged GETs for the tail only while they make the transfer faster.

Which is faster depends on the server and the path to it, not on its name: some servers send one long GET
at full speed and answer every range as if they read the whole object first, while a store at a distance
rewards parallel ranges. So a transfer starts one open-ended GET and watches where its time goes. While
the streams spend most of their time waiting for bytes (the network is the limit, not our hashing and
extraction), it opens one more open-ended GET for the second half of the largest range left, and keeps it
only if the transfer is predicted to end sooner with it (``_Window`` says how); otherwise the stream it split
from reads on through that range and the transfer stays as it is.

Every byte is handed to ``writer.write_at`` once, at its offset; a stream reads past bytes another one
already wrote, or opens a new range after them where that is quicker. The tier supplies
``open_range(start)``: the object's bytes from ``start`` to its end, as chunks, with the object's size and
a way to close the connection.
"""

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .base import TierError

MiB = 1024 * 1024
# What a tier asks its stream for at a time: few enough calls per second, little held per stream.
CHUNK_BYTES = MiB

OpenRange = Callable[[int], tuple[Iterable[bytes], int, Callable[[], None]]]

# What one reading of a stream ended with.
_DONE, _ENDED, _SKIP = object(), object(), object()


@dataclass(frozen=True)
class Policy:
    # Long enough to average a few chunks of each stream, short against a transfer worth splitting.
    window_seconds: float = 0.5
    # A stream is only added for this much of the object or more: opening one costs a round trip.
    min_part_bytes: int = 32 * MiB
    # ... and for a part that lasts this many windows at the rate so far: a trial costs about a window
    # (bytes read out of order, the frontier slowed where the streams share one limit), and the rest of
    # the part must pay that back.
    part_windows: float = 4.0
    max_streams: int = 8
    # The streams spent at least this share of the window waiting for bytes: the network is the limit.
    network_share: float = 0.6
    # An added stream stays only if the transfer's predicted time left fell at least this much.
    gain: float = 1.15
    # The stream a dropped one gave its part back to skips the bytes already written on a new connection
    # when reading through them would take longer than this many opens of a range (as slow as seen so far).
    reopen_cost: float = 2.0

    def wants_more(self, *, waiting_share: float, streams: int, largest_left: int, rate: float) -> bool:
        part = max(self.min_part_bytes, rate * self.window_seconds * self.part_windows)
        return streams < self.max_streams and waiting_share >= self.network_share and largest_left >= 2 * part

    def keeps(self, *, seconds_before: float, seconds_after: float) -> bool:
        return seconds_after * self.gain <= seconds_before


@dataclass(frozen=True)
class WindowTotals:
    """What the streams did in one window, and what is left of the transfer at its end.

    The frontier is the range holding the first byte not yet read: only its bytes reach the hashing and
    the extraction as they arrive. Bytes of the other ranges wait until the frontier reaches them.
    """

    read: int
    waiting: float
    streams: int
    frontier_read: int
    frontier_left: int
    others_left: int

    def seconds_left(self, *, frontier_rate: float, consume_rate: float) -> float:
        """The frontier read at its rate, then the bytes read ahead consumed as fast as we can take them."""
        return self.frontier_left / max(frontier_rate, 1.0) + self.others_left / max(consume_rate, 1.0)


# The policy transfers use unless given one; tests replace it to force streams on or off.
POLICY = Policy()


@dataclass
class _Range:
    """[pos, end) left to one stream; [skip_from, skip_to) was written by a dropped stream: read past it."""

    start: int
    pos: int
    end: int
    skip_from: int = 0
    skip_to: int = 0
    drop: bool = False
    alive: bool = True
    waiting: float = 0.0  # seconds spent waiting for bytes in the current window
    read: int = 0  # bytes read in the current window


@dataclass
class Report:
    streams_opened: int = 1
    streams_kept: int = 1
    decisions: list[str] = field(default_factory=list)


class _Transfer:
    def __init__(self, open_range: OpenRange, writer, *, deadline: float, policy: Policy, attempts: int,
                 retryable: tuple, what: str, clock: Callable[[], float]):
        self.open_range = open_range
        self.writer = writer
        self.deadline = deadline
        self.policy = policy
        self.attempts = max(1, attempts)
        self.retryable = retryable
        self.what = what
        self.clock = clock
        self.lock = threading.Lock()
        self.ranges: list[_Range] = []
        self.threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []
        self.size: int | None = None
        self.report = Report()
        self.began = 0.0
        self.bytes_read = 0  # by every stream, dropped ones included
        # The longest a range took to open (request to headers): what skipping bytes by reopening costs.
        self.open_seconds = 0.0

    def run(self) -> Report:
        self.began = self.clock()
        chunks, size, close = self.open_range(0)
        self.size = size
        self._opened_in(self.clock() - self.began)
        main = _Range(start=0, pos=0, end=size)
        self.ranges.append(main)
        try:
            self._stream(main, chunks, close, control=True)
        except BaseException as error:
            with self.lock:
                self.errors.insert(0, error)
            raise
        finally:
            for thread in self.threads:
                thread.join()
        if self.errors:
            raise self.errors[0]
        gaps = [(r.pos, r.end) for r in self.ranges if r.pos < r.end]
        if gaps:
            raise TierError(f"{self.what}: ranges left unread {gaps}")
        return self.report

    # --- one stream ------------------------------------------------------------------------------------

    def _stream(self, rng: _Range, chunks, close, *, control: bool) -> None:
        attempt = 1
        window = _Window(self, self.clock()) if control else None
        try:
            while True:
                try:
                    outcome = self._read_through(rng, chunks, window)
                    if outcome is _DONE:
                        return
                    if outcome is _SKIP:
                        # Past bytes a dropped stream wrote, on a new connection: not a failed attempt.
                        close()
                        chunks, close = self._connect(rng.pos)
                        continue
                    reason = "the connection ended early"
                except self.retryable as error:
                    reason = repr(error)
                close()
                if attempt >= self.attempts:
                    raise TierError(f"{self.what}: {reason} at byte {rng.pos}, after {attempt} attempts")
                attempt += 1
                chunks, close = self._connect(rng.pos)
        finally:
            close()
            with self.lock:
                rng.alive = False

    def _connect(self, start: int):
        """``open_range(start)`` for a stream of this transfer: the object must not have changed size, and
        the time the open took is noted (what skipping bytes on a new connection costs)."""
        began = self.clock()
        chunks, size, close = self.open_range(start)
        if size != self.size:
            close()
            raise TierError(f"{self.what} changed size while downloading ({self.size} -> {size})")
        self._opened_in(self.clock() - began)
        return chunks, close

    def _opened_in(self, seconds: float) -> None:
        with self.lock:
            self.open_seconds = max(self.open_seconds, seconds)

    def _read_through(self, rng: _Range, chunks, window) -> object:
        """Read until the range is done (_DONE), the connection ends (_ENDED), or a new connection past bytes
        a dropped stream wrote would be quicker than reading through them (_SKIP, with ``rng.pos`` there)."""
        iterator = iter(chunks)
        offset = rng.pos
        while True:
            with self.lock:
                if self.errors:
                    return _DONE  # another stream failed: the transfer does, and says why
                if (rng.drop and self._hand_over(rng)) or offset >= rng.end:
                    # Decided under the lock: nobody hands this stream more work once it has ended.
                    rng.alive = False
                    return _DONE
                if rng.skip_from <= offset < rng.skip_to and self._quicker_to_skip(rng.skip_to - offset):
                    self.report.decisions.append(f"skipped {(rng.skip_to - offset) / MiB:.0f} MiB already written")
                    rng.pos = rng.skip_to
                    return _SKIP
            if time.monotonic() > self.deadline:
                raise TierError(f"deadline passed while downloading {self.what}")
            waited = self.clock()
            chunk = next(iterator, None)
            waited = self.clock() - waited
            if chunk is None:
                return _ENDED
            with self.lock:
                rng.waiting += waited
                rng.read += len(chunk)
                self.bytes_read += len(chunk)
            offset = self._deliver(rng, offset, memoryview(chunk))
            if window is not None:
                window.tick()

    def _deliver(self, rng: _Range, offset: int, data: memoryview) -> int:
        while data:
            with self.lock:
                if offset >= rng.end:
                    return offset
                skipping = rng.skip_from <= offset < rng.skip_to
                limit = rng.skip_to if skipping else min(rng.end, rng.skip_from if offset < rng.skip_from else rng.end)
                size = min(len(data), limit - offset)
                # Claimed before it is written: a split never gives these bytes to another stream.
                rng.pos = offset + size
            if not skipping:
                self.writer.write_at(offset, data[:size])
            offset += size
            data = data[size:]
        return offset

    def _quicker_to_skip(self, skipped: int) -> bool:
        """Whether opening a range (as long as the slowest open so far took) beats reading ``skipped`` bytes
        at the rate the transfer has had. Where a server is slow to answer ranges, it reads through."""
        elapsed = self.clock() - self.began
        if elapsed <= 0 or not self.bytes_read:
            return False
        return self.policy.reopen_cost * self.open_seconds < skipped / (self.bytes_read / elapsed)

    def _hand_over(self, rng: _Range) -> bool:
        """A dropped stream gives what it has left to the stream it was split from, which reads on through
        it (skipping what this one wrote). If that stream has already ended, this one carries on."""
        for other in self.ranges:
            # One skip per stream: a stream still to read past another's bytes takes no more over.
            if other is not rng and other.alive and other.end == rng.start and other.skip_to <= other.pos:
                other.end = rng.end
                other.skip_from, other.skip_to = rng.start, rng.pos
                self.ranges.remove(rng)
                return True
        rng.drop = False
        return False

    # --- adding and dropping streams ------------------------------------------------------------------

    def split(self) -> _Range | None:
        with self.lock:
            live = [r for r in self.ranges if r.alive and not r.drop and not r.skip_to > r.pos]
            if not live:
                return None
            largest = max(live, key=lambda r: r.end - r.pos)
            cut = largest.pos + (largest.end - largest.pos) // 2
            if largest.end - cut < self.policy.min_part_bytes:
                return None
            added = _Range(start=cut, pos=cut, end=largest.end)
            largest.end = cut
            self.ranges.append(added)
        thread = threading.Thread(target=self._helper, args=(added,), name="ranged-download", daemon=True)
        self.threads.append(thread)
        self.report.streams_opened += 1
        thread.start()
        return added

    def _helper(self, rng: _Range) -> None:
        try:
            chunks, close = self._connect(rng.start)
            self._stream(rng, chunks, close, control=False)
        except BaseException as error:
            with self.lock:
                # An extra stream that fails hands its part back like a dropped one; only if nobody can take
                # it does the transfer fail.
                rng.alive = True
                if not self._hand_over(rng):
                    self.errors.append(error)
                rng.alive = False

    def largest_left(self) -> int:
        with self.lock:
            return max((r.end - r.pos for r in self.ranges if r.alive), default=0)

    def window_totals(self) -> WindowTotals:
        """What the streams did since the last call (their counters start again) and what is left."""
        with self.lock:
            unfinished = [r for r in self.ranges if r.pos < r.end]
            frontier = min(unfinished, key=lambda r: r.pos, default=None)
            totals = WindowTotals(
                read=sum(r.read for r in self.ranges),
                waiting=sum(r.waiting for r in self.ranges),
                streams=sum(1 for r in self.ranges if r.alive),
                frontier_read=frontier.read if frontier else 0,
                frontier_left=frontier.end - frontier.pos if frontier else 0,
                others_left=sum(r.end - r.pos for r in unfinished if r is not frontier),
            )
            for r in self.ranges:
                r.read = 0
                r.waiting = 0.0
            return totals


class _Window:
    """The controller, run by the first stream between its chunks: measure, then add, keep or drop.

    A stream added for the second half of a range reads bytes that wait for the frontier: the hashing
    and the extraction take bytes in order. So a trial is judged by the time it predicts is left, not by
    the bytes the streams read: the frontier's range at the rate it now gets, then what was read ahead at
    the rate we consumed bytes before (a stream that waits for the network most of the time leaves the
    consumer idle as long). Where each stream has its own limit (a distant store), the frontier keeps its
    rate and the stream pays; where the streams share one (a busy server), the frontier slows and it does
    not, however many bytes the two read together.
    """

    def __init__(self, transfer: _Transfer, now: float):
        self.transfer = transfer
        self.began = now
        # The first window holds the request's round trip and the connection's ramp-up: a rate measured
        # there is low, and any stream added after it would look like a gain.
        self.state = "warm-up"
        self.rate_before = 0.0
        self.consume_rate = 0.0
        self.trial: _Range | None = None

    def tick(self) -> None:
        t = self.transfer
        now = t.clock()
        elapsed = max(now - self.began, 1e-9)
        if self.state == "settled" or elapsed < t.policy.window_seconds:
            return
        totals = t.window_totals()
        self.began = now
        if self.state == "warm-up":
            self.state = "probe"
            return
        rate = totals.read / elapsed
        streams = totals.streams
        if self.state == "trial":
            after = totals.seconds_left(frontier_rate=totals.frontier_read / elapsed, consume_rate=self.consume_rate)
            before = (totals.frontier_left + totals.others_left) / max(self.rate_before, 1.0)
            verdict = f"{rate / MiB:.0f} MiB/s, {after:.1f} s left against {before:.1f} s"
            if t.policy.keeps(seconds_before=before, seconds_after=after):
                t.report.streams_kept += 1
                t.report.decisions.append(f"kept stream {streams}: {verdict}")
                self.state = "probe"
            else:
                with t.lock:
                    self.trial.drop = True
                t.report.decisions.append(f"dropped stream {streams}: {verdict}")
                self.state = "settled"
                return
        share = totals.waiting / (elapsed * max(1, streams))
        if t.policy.wants_more(waiting_share=share, streams=streams, largest_left=t.largest_left(), rate=rate):
            self.trial = t.split()
            if self.trial is not None:
                self.rate_before = rate
                # The share of its time a stream did not wait for bytes went to handing them on in order.
                self.consume_rate = totals.frontier_read / elapsed / max(1.0 - share, 0.05)
                self.state = "trial"
                t.report.decisions.append(
                    f"added stream {streams + 1}: {rate / MiB:.0f} MiB/s, {share:.0%} of the time waiting"
                )


def transfer(
    open_range: OpenRange,
    writer,
    *,
    deadline: float,
    attempts: int,
    retryable: tuple,
    what: str,
    policy: Policy | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Report:
    """Download the object ``open_range`` reads into ``writer`` (``write_at(offset, data)``, thread-safe).

    A connection that fails or ends early while reading is opened again where it stopped, ``attempts``
    times in all per stream; errors of ``open_range`` itself pass through (the SDK already retried).
    """
    return _Transfer(
        open_range,
        writer,
        deadline=deadline,
        policy=policy or POLICY,
        attempts=attempts,
        retryable=retryable,
        what=what,
        clock=clock,
    ).run()
