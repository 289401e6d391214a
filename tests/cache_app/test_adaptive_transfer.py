"""The adaptive transfer against real servers: one streamed GET by default, ranged GETs added only when the
policy sees the network as the limit, dropped when they do not pay, and the bytes always whole and in place.

Which decision the policy takes is forced here (a policy that always or never adds, or never keeps): the
tests check what each decision does, never how fast anything is.
"""

import hashlib
import os
import threading
import time

import pytest

from cache_app.services.integrity import HashingWriter
from cache_app.services.tiers import Location, adaptive, tier_for, tiers_reset

MiB = 1024 * 1024
PAYLOAD_BYTES = 24 * MiB + 4321

ONE_STREAM = adaptive.Policy(network_share=2.0)  # never sees the network as the limit
# Sees the network as the limit from the first chunk, splits down to 4 MiB parts and keeps every stream.
MANY_STREAMS = adaptive.Policy(window_seconds=0.0, min_part_bytes=2 * MiB, network_share=0.0, gain=0.0)
# Adds a stream, then finds it did not pay and drops it: the stream it split from reads on through its part.
DROPPED = adaptive.Policy(
    window_seconds=0.0, min_part_bytes=2 * MiB, network_share=0.0, gain=1e9, reopen_cost=float("inf")
)


@pytest.fixture(scope="module")
def payload(tmp_path_factory):
    path = tmp_path_factory.mktemp("payload") / "model.bin"
    path.write_bytes(os.urandom(PAYLOAD_BYTES))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(params=["s3", "azure"])
def proxied(request, payload, fault_proxy_factory, settings):
    """The payload on moto or Azurite, and the tier pointed at a counting proxy in front of it."""
    if request.param == "s3":
        location = Location(scheme="s3", container=request.getfixturevalue("s3_bucket"), key="m/model.bin")
        tier_for(location).upload(location, payload[0])
        proxy = fault_proxy_factory(request.getfixturevalue("moto_server").endpoint_url)
        settings.AWS_S3_ENDPOINT_URL = proxy.url
    else:
        location = Location(scheme="azure", container=request.getfixturevalue("azure_container"), key="m/model.bin")
        tier_for(location).upload(location, payload[0])
        server = request.getfixturevalue("azurite_server")
        proxy = fault_proxy_factory(server.blob_endpoint)
        settings.AZURE_CONNECTION_STRING = server.connection_string_via(f"{proxy.url}/devstoreaccount1")
    settings.MODEL_FETCH_RETRIES = 3
    tiers_reset()
    proxy.reset()
    return location, proxy


def download(location, target, *, on_ordered=None, keep=True):
    writer = HashingWriter(target, on_ordered=on_ordered, keep=keep)
    try:
        tier_for(location).download(location, writer, deadline=time.monotonic() + 60)
        return writer.hexdigest(), writer.bytes_written
    finally:
        writer.close()


def test_one_stream_is_one_get(proxied, payload, tmp_path, monkeypatch):
    location, proxy = proxied
    monkeypatch.setattr(adaptive, "POLICY", ONE_STREAM)
    assert download(location, tmp_path / "copy") == (payload[1], PAYLOAD_BYTES)
    assert proxy.count(method="GET", path_contains="model.bin") == 1
    assert (tmp_path / "copy").read_bytes() == payload[0].read_bytes()


def test_added_ranged_streams_deliver_every_byte_once_in_order(proxied, payload, tmp_path, monkeypatch):
    location, proxy = proxied
    monkeypatch.setattr(adaptive, "POLICY", MANY_STREAMS)
    # Little room for ranges ahead of the hashed frontier: the rest waits in the file and is read back.
    monkeypatch.setattr("cache_app.services.integrity.PENDING_MEMORY_BYTES", 3 * MiB)
    ordered = []

    assert download(location, tmp_path / "copy", on_ordered=lambda data: ordered.append(bytes(data))) == (
        payload[1],
        PAYLOAD_BYTES,
    )
    assert proxy.count(method="GET", path_contains="model.bin") > 1
    assert b"".join(ordered) == payload[0].read_bytes()


def test_a_stream_that_does_not_pay_is_dropped_and_its_part_read_by_the_first(proxied, payload, tmp_path, monkeypatch):
    location, proxy = proxied
    monkeypatch.setattr(adaptive, "POLICY", DROPPED)
    ordered = []

    assert download(location, tmp_path / "copy", on_ordered=lambda data: ordered.append(bytes(data)), keep=False) == (
        payload[1],
        PAYLOAD_BYTES,
    )
    assert proxy.count(method="GET", path_contains="model.bin") == 2  # the stream, and the one dropped
    assert b"".join(ordered) == payload[0].read_bytes()


def test_a_truncated_ranged_stream_is_resumed_where_it_stopped(proxied, payload, tmp_path, monkeypatch):
    location, proxy = proxied
    monkeypatch.setattr(adaptive, "POLICY", MANY_STREAMS)
    proxy.truncate_next(2, after_bytes=MiB)

    assert download(location, tmp_path / "copy") == (payload[1], PAYLOAD_BYTES)


def test_the_policy_adds_only_while_the_network_is_the_limit_and_keeps_only_what_pays():
    policy = adaptive.Policy()
    big = 10 * policy.min_part_bytes
    slow = MiB  # bytes per second
    assert policy.wants_more(waiting_share=0.9, streams=1, largest_left=big, rate=slow)
    # At this rate the added stream's half would be read in half the windows a trial must be paid back in.
    fast = big / (policy.window_seconds * policy.part_windows)
    assert not policy.wants_more(waiting_share=0.9, streams=1, largest_left=big, rate=fast)
    # The stream waits on us (hashing, extraction), not on the network: another stream cannot help.
    assert not policy.wants_more(waiting_share=0.2, streams=1, largest_left=big, rate=slow)
    assert not policy.wants_more(waiting_share=0.9, streams=1, largest_left=policy.min_part_bytes, rate=slow)
    assert not policy.wants_more(waiting_share=0.9, streams=policy.max_streams, largest_left=big, rate=slow)
    assert policy.keeps(seconds_before=3.0, seconds_after=2.0)
    assert not policy.keeps(seconds_before=3.0, seconds_after=2.9)


@pytest.mark.parametrize(
    ("frontier_rate", "kept"),
    [
        (100 * MiB, True),  # a distant store: each stream has its own limit, the frontier keeps its rate
        (50 * MiB, False),  # a busy server: the two share one limit, the frontier gets half of it
    ],
)
def test_a_trial_is_judged_by_the_time_left_with_the_bytes_read_ahead_waiting_for_the_frontier(frontier_rate, kept):
    # Before the trial: one stream at 100 MiB/s, waiting for bytes 80% of the time (we could take 500 MiB/s).
    # Now 200 MiB are left to the frontier's range and 200 MiB to the added stream's.
    totals = adaptive.WindowTotals(read=0, waiting=0.0, streams=2, frontier_read=0,
                                   frontier_left=200 * MiB, others_left=200 * MiB)
    after = totals.seconds_left(frontier_rate=frontier_rate, consume_rate=500 * MiB)
    before = 400 * MiB / (100 * MiB)
    # Both cases read 200 MiB/s in all: only where the frontier's rate holds is the transfer shorter.
    assert adaptive.Policy().keeps(seconds_before=before, seconds_after=after) is kept


def test_a_writer_that_keeps_no_archive_refuses_to_vouch_for_rewritten_bytes(tmp_path):
    writer = HashingWriter(tmp_path / "spill", keep=False)
    with writer:
        writer.write_at(0, b"a" * 10)
        writer.write_at(0, b"b" * 10)  # bytes already hashed and passed on, written again
        with pytest.raises(OSError, match="written again"):
            writer.hexdigest()
    assert (tmp_path / "spill").stat().st_size <= 10


def test_no_stream_is_added_on_the_first_window_which_holds_the_ramp_up(tmp_path):
    size = 16 * MiB
    data = os.urandom(size)
    opened = []
    ticks = iter(range(10**6))

    def open_range(start):
        opened.append(start)
        chunks = (data[at : at + MiB] for at in range(start, size, MiB))
        return chunks, size, lambda: None

    eager = adaptive.Policy(window_seconds=1.0, min_part_bytes=MiB, network_share=0.0, gain=0.0)
    writer = HashingWriter(tmp_path / "copy")
    with writer:
        # Each reading of the clock is one second later: every chunk ends a window of the controller.
        adaptive.transfer(open_range, writer, deadline=time.monotonic() + 60, attempts=1, retryable=(),
                          what="synthetic", policy=eager, clock=lambda: float(next(ticks)))
        assert writer.hexdigest() == hashlib.sha256(data).hexdigest()
    # The first window only measured; the first split came after the second, with two chunks read.
    assert opened[:2] == [0, 2 * MiB + (size - 2 * MiB) // 2]


def test_the_stream_a_dropped_one_gave_its_part_skips_the_written_bytes_on_a_new_connection(tmp_path):
    size = 24 * MiB
    data = os.urandom(size)
    opened = []
    helper_ahead, trial_over, helper_closed = threading.Event(), threading.Event(), threading.Event()
    ticks = iter(range(10**6))

    def open_range(start):
        opened.append(start)

        def chunks():
            # The first stream's third chunk ends the trial: by then the added stream has written 3 MiB, and it
            # is still reading when the trial ends, and has handed its part back before the first range ends.
            for index, at in enumerate(range(start, size, MiB)):
                if start == 0 and index == 2:
                    helper_ahead.wait(10)
                if start == 0 and index == 3:
                    trial_over.set()
                    helper_closed.wait(10)
                if start and index == 3:
                    helper_ahead.set()
                if start and index == 4:
                    trial_over.wait(10)
                yield data[at : at + MiB]

        return chunks(), size, (helper_closed.set if start and not helper_closed.is_set() else lambda: None)

    # Adds a stream after the second window and drops it after the third; skipping always beats reading through.
    policy = adaptive.Policy(window_seconds=1.0, min_part_bytes=MiB, network_share=0.0, gain=1e9, reopen_cost=0.0)
    spill = tmp_path / "spill"
    ordered = []
    writer = HashingWriter(spill, on_ordered=lambda piece: ordered.append(bytes(piece)), keep=False)
    with writer:
        report = adaptive.transfer(open_range, writer, deadline=time.monotonic() + 60, attempts=1, retryable=(),
                                   what="synthetic", policy=policy, clock=lambda: float(next(ticks)))
        # Every byte once, in order: a byte written twice would make the writer refuse to vouch for the digest.
        assert writer.hexdigest() == hashlib.sha256(data).hexdigest()
    assert b"".join(ordered) == data
    cut = 2 * MiB + (size - 2 * MiB) // 2
    # The first stream, the added one, and the first again, opened past what the dropped one had written.
    assert opened[:2] == [0, cut] and len(opened) == 3 and opened[2] >= cut + 3 * MiB, (opened, report.decisions)
    assert [d.split()[0] for d in report.decisions] == ["added", "dropped", "skipped"]
