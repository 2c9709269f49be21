"""The iopub reader (kernels/draining.py) over real ZMQ PUB/SUB sockets on the event loop:
nothing a kernel publishes is lost or reordered, whether it comes in a burst, after the
reader went quiet, or while a callback fails."""

from __future__ import annotations

import asyncio
import logging

import pytest
import zmq

from collab_kernels.kernels.draining import DrainingReader

LOG = logging.getLogger("test-draining")


def _pair(kind: str):
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    if kind == "inproc":
        pub.bind("inproc://test-draining")
        sub.connect("inproc://test-draining")
    else:
        port = pub.bind_to_random_port("tcp://127.0.0.1")
        sub.connect(f"tcp://127.0.0.1:{port}")
    return ctx, pub, sub


@pytest.fixture(params=["inproc", "tcp"])
def pubsub(request):
    """A publisher and a subscriber, over tcp (as to a kernel) and over inproc."""
    ctx, pub, sub = _pair(request.param)
    yield pub, sub
    pub.close(linger=0)
    sub.close(linger=0)
    ctx.term()


@pytest.fixture
def inproc_pubsub():
    """Over inproc, what is sent is in the subscriber's queue when ``send`` returns."""
    ctx, pub, sub = _pair("inproc")
    yield pub, sub
    pub.close(linger=0)
    sub.close(linger=0)
    ctx.term()


async def _subscribed(pub: zmq.Socket, sub: zmq.Socket) -> None:
    """Wait until the subscription reached the publisher (a PUB drops what nobody takes)."""
    while True:
        pub.send_multipart([b"hello"])
        if sub.poll(50):
            sub.recv_multipart()
            while sub.poll(0):
                sub.recv_multipart()
            return
        await asyncio.sleep(0)  # the loop may run between two attempts


class Collector:
    def __init__(self, expected: int):
        self.frames: list[list[bytes]] = []
        self.expected = expected
        self.done = asyncio.get_event_loop().create_future()

    def __call__(self, frames: list[bytes]) -> None:
        self.frames.append(frames)
        if len(self.frames) >= self.expected and not self.done.done():
            self.done.set_result(None)


async def test_a_burst_queued_before_the_reader_is_delivered_whole_and_in_order(pubsub):
    pub, sub = pubsub
    await _subscribed(pub, sub)
    for i in range(1000):
        pub.send_multipart([b"id", str(i).encode(), b"x" * 100])
    assert sub.poll(5000)  # queued before the reader exists
    got = Collector(1000)
    reader = DrainingReader(sub, got, log=LOG, limit=200)
    await asyncio.wait_for(got.done, 10)
    assert [int(f[1]) for f in got.frames] == list(range(1000))
    assert all(f[0] == b"id" and f[2] == b"x" * 100 for f in got.frames)
    reader.on_recv(None)


async def test_messages_after_the_reader_went_quiet_still_wake_it(pubsub):
    """The ZMQ descriptor signals edges: after a drain ends, a later message must signal
    again (the reader stops only when the socket's events show nothing to receive)."""
    pub, sub = pubsub
    await _subscribed(pub, sub)
    got = Collector(1)
    reader = DrainingReader(sub, got, log=LOG, limit=3)
    for round_ in range(20):
        got.done = asyncio.get_event_loop().create_future()
        got.expected = len(got.frames) + round_ % 5 + 1
        for i in range(round_ % 5 + 1):  # 1 to 5 messages: below, at and above the limit
            pub.send_multipart([f"{round_}-{i}".encode()])
        await asyncio.wait_for(got.done, 10)
    names = [f[0].decode() for f in got.frames]
    assert names == [f"{r}-{i}" for r in range(20) for i in range(r % 5 + 1)]
    reader.close(linger=0)
    assert reader.closed()


async def test_a_failing_callback_is_logged_and_the_next_message_still_arrives(pubsub, caplog):
    pub, sub = pubsub
    await _subscribed(pub, sub)
    got = Collector(2)

    def callback(frames: list[bytes]) -> None:
        if frames[0] == b"bad":
            raise ValueError("listener bug")
        got(frames)

    reader = DrainingReader(sub, callback, log=LOG)
    with caplog.at_level(logging.ERROR, logger="test-draining"):
        for name in (b"one", b"bad", b"two"):
            pub.send_multipart([name])
        await asyncio.wait_for(got.done, 10)
    assert [f[0] for f in got.frames] == [b"one", b"two"]
    assert "Uncaught exception handling an iopub message" in caplog.text
    reader.on_recv(None)


async def test_flush_hands_over_what_is_queued_now_and_stopping_ends_delivery(inproc_pubsub):
    pub, sub = inproc_pubsub
    await _subscribed(pub, sub)
    got = Collector(10**9)
    reader = DrainingReader(sub, got, log=LOG, limit=4)
    for i in range(10):
        pub.send_multipart([str(i).encode()])
    assert sub.poll(5000)  # blocks the loop: the reader cannot take them before flush
    # synchronous: every queued message, beyond the per-wake limit, before returning
    assert reader.flush() == 10
    assert [int(f[0]) for f in got.frames] == list(range(10))
    reader.on_recv(None)
    pub.send_multipart([b"after"])
    assert sub.poll(5000)  # blocks the loop: the reader cannot take them before flush
    assert reader.flush() == 0
    assert len(got.frames) == 10
    # reading again picks up what waited
    again = Collector(1)
    reader.on_recv(again)
    await asyncio.wait_for(again.done, 10)
    assert again.frames == [[b"after"]]
    reader.close(linger=0)
