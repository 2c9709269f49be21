"""Activity tracking (kernels/activity.py): stock rules, with the activity traits assigned
at most once per settle interval during a burst and always ending on its last activity."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from jupyter_client.session import Session
from jupyter_server.services.kernels.kernelmanager import MappingKernelManager
from traitlets import HasTraits, Instance, List, Unicode

from collab_kernels.kernels.activity import SETTLE, KernelActivity
from collab_kernels.kernels.message import KernelMessage

START = datetime(2026, 12, 4, tzinfo=timezone.utc)


class Manager(HasTraits):
    last_kernel_activity = Instance(datetime, default_value=START)
    untracked_message_types = List(
        Unicode(),
        default_value=list(
            MappingKernelManager.class_traits()["untracked_message_types"].default()
        ),
    )

    def track_message_type(self, message_type):
        return message_type not in self.untracked_message_types


class Kernel(HasTraits):
    last_activity = Instance(datetime, default_value=START)
    execution_state = Unicode("idle")


class Clock:
    def __init__(self):
        self.now = START

    def __call__(self) -> datetime:
        self.now += timedelta(microseconds=1)
        return self.now


SESSION = Session()
REQUEST = SESSION.msg("execute_request", {"code": ""})


def _message(msg_type: str, content: dict, parent: dict = REQUEST) -> KernelMessage:
    msg = SESSION.msg(msg_type, content, parent=parent)
    frames = SESSION.serialize(msg)
    return KernelMessage("iopub", frames[1:], SESSION)


async def test_a_burst_is_assigned_sparingly_and_ends_on_its_last_activity():
    manager, kernel, clock = Manager(), Kernel(), Clock()
    assigned: list[datetime] = []
    settled = asyncio.Event()

    last = START + timedelta(microseconds=2001)  # busy and 2000 streams: all activity

    def on_change(change):
        assigned.append(change["new"])
        if change["new"] == last:
            settled.set()

    manager.observe(on_change, "last_kernel_activity")
    activity = KernelActivity(manager, kernel, lambda _id: False, clock=clock)
    burst = [_message("stream", {"name": "stdout", "text": f"{i}\n"}) for i in range(2000)]
    activity(_message("status", {"execution_state": "busy"}))
    assert kernel.execution_state == "busy"
    assert assigned == [START + timedelta(microseconds=1)]
    started = asyncio.get_event_loop().time()
    for msg in burst:
        activity(msg)
    took = asyncio.get_event_loop().time() - started
    # in one loop iteration: at most one assignment per interval
    assert len(assigned) <= 2 + took / SETTLE
    assert clock.now == last
    await asyncio.wait_for(settled.wait(), 5 + SETTLE)
    assert manager.last_kernel_activity == kernel.last_activity == last
    # a status is assigned at once: after the idle, everything is current
    activity(_message("stream", {"name": "stdout", "text": "end\n"}))
    activity(_message("status", {"execution_state": "idle"}))
    assert kernel.execution_state == "idle"
    assert manager.last_kernel_activity == kernel.last_activity == clock.now
    # a message long after the burst is assigned at once
    await asyncio.sleep(SETTLE)  # the interval itself is what is tested
    activity(_message("stream", {"name": "stdout", "text": "later\n"}))
    assert manager.last_kernel_activity == kernel.last_activity == clock.now
    activity.stop()


async def test_untracked_types_and_startup_nudges_are_not_activity():
    manager, kernel, clock = Manager(), Kernel(), Clock()
    activity = KernelActivity(manager, kernel, lambda msg_id: msg_id == "nudge", clock=clock)
    info = SESSION.msg("comm_info_request", {})
    activity(_message("status", {"execution_state": "busy"}, parent=info))
    assert kernel.execution_state == "idle"  # an untracked parent does not set the state
    assert manager.last_kernel_activity == START
    nudge = SESSION.msg("kernel_info_request", {})
    nudge["header"]["msg_id"] = "nudge"
    activity(_message("status", {"execution_state": "busy"}, parent=nudge))
    assert kernel.execution_state == "idle" and manager.last_kernel_activity == START
    # the trait changes at runtime: the rule follows it
    manager.untracked_message_types = []
    activity(_message("status", {"execution_state": "busy"}, parent=info))
    assert kernel.execution_state == "busy"
    assert manager.last_kernel_activity == clock.now
    activity.stop()


async def test_stop_assigns_what_is_pending():
    manager, kernel, clock = Manager(), Kernel(), Clock()
    activity = KernelActivity(manager, kernel, lambda _id: False, clock=clock)
    for i in range(3):
        activity(_message("stream", {"name": "stdout", "text": f"{i}\n"}))
    assert manager.last_kernel_activity != clock.now
    activity.stop()
    assert manager.last_kernel_activity == kernel.last_activity == clock.now
