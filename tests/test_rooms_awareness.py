"""Awareness at scale: renewals are gathered, changes are relayed promptly, presence stays right."""

from __future__ import annotations


async def test_unchanged_renewals_are_gathered_into_one_message(
    rooms_notebook, collab_client, room_manager
):
    path = rooms_notebook("renewals.ipynb")
    alice = await collab_client(path)
    bob = await collab_client(path)
    room = room_manager.find_room(alice.room_id)
    room.awareness_renewal_window = 3600  # only an explicit flush relays renewals here
    cid = alice.awareness.client_id

    received: list[int] = []  # awareness messages about alice that reached bob

    def count(topic, args):
        changes, _origin = args
        if topic == "update" and cid in changes["added"] + changes["updated"]:
            received.append(cid)

    bob.awareness.observe(count)
    state = {"user": {"name": "alice"}}
    alice.set_awareness(state)  # a change: relayed at once
    await bob.wait_for(lambda _d: bob.awareness.states.get(cid, {}).get("user") == state["user"])
    changes_seen = len(received)

    for _ in range(3):  # what a browser does every 15 s: re-send the same state
        alice.set_awareness(state)
    # a document edit from alice travels behind her renewals on the same connection
    source = alice.document.ycells[0]["source"]
    source.insert(len(source), "  # after renewals")
    await bob.wait_for(lambda doc: "after renewals" in str(doc.ycells[0]["source"]))

    assert room._pending_renewals == {cid}, "renewals must be gathered, not relayed one by one"
    assert not room._pending_awareness

    room.flush()  # the renewal window ends: one combined message
    await bob.wait_for(lambda _d: len(received) > changes_seen)
    assert len(received) == changes_seen + 1
    assert not room._pending_renewals


async def test_leaving_collaborator_disappears_from_presence(rooms_notebook, collab_client):
    path = rooms_notebook("leave.ipynb")
    alice = await collab_client(path)
    bob = await collab_client(path)
    alice.set_awareness({"user": {"name": "alice"}})
    cid = alice.awareness.client_id
    await bob.wait_for(lambda _d: cid in bob.awareness.states)
    await alice.close()
    await bob.wait_for(lambda _d: cid not in bob.awareness.states)
