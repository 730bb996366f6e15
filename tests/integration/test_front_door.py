"""The TCP front door of the running service, over real sockets: shared slots one client holds.

Each test speaks docs/PROTOCOL.md from plain sockets bound to loopback source
addresses of their own, to the app deployed by the `service` fixture, and
reads the ingress's own counters (`status`, `recent_requests`) where the
wire alone cannot tell why a request was answered as it was.
"""

from __future__ import annotations

import json
import re
import struct
import uuid

import pytest
from front_door_clients import HeldUpload, TrickleDownloads, slow_images, unique, wait_until
from service_users import PASSWORD
from wire_client import LOGIN, Conn, fresh_address

from devkit.abuse import Location, glb_bytes, plant_glb
from devkit.users import create_users
from tcp_proxy.settings import ProxySettings

pytestmark = pytest.mark.timeout(900)

HASH_NAME = re.compile(r"^[0-9a-f]{64}\.glb$")
SMALL_FRAME_CAP = 65536  # LOGIN, GET_GLB and LIST payloads (docs/PROTOCOL.md section 5)
BIG_GLB_BYTES = 48 << 20  # far more than the loopback socket buffers hold
SMALL_GLB_BYTES = 4096


def status(service) -> dict:
    return service.handle.status.remote().result(timeout_s=60)


def recent_requests(service) -> list[dict]:
    return service.handle.recent_requests.remote().result(timeout_s=60)


def new_user(service, prefix: str) -> str:
    """A user of this module alone, created in the service's database."""
    username = f"{prefix}-{uuid.uuid4().hex[:8]}"
    create_users(service.database_url, {username: False}, PASSWORD)
    return username


@pytest.fixture(scope="module")
def planted(service) -> dict[str, tuple[str, bytes]]:
    """{"big": (hash, bytes), "small": (hash, bytes)}: GLBs stored in the service's storage."""
    owner = new_user(service, "door-owner")
    location = Location(service.database_url, str(service.storage_root))
    return {
        name: (plant_glb(location, owner, f"front door {name}", size), glb_bytes(size))
        for name, size in (("big", BIG_GLB_BYTES), ("small", SMALL_GLB_BYTES))
    }


# --- admission ------------------------------------------------------------------------


def test_another_users_images_are_answered_while_one_user_holds_uploads(service, jpegs):
    """alice holds an admitted upload open (a trickle of its payload) and finishes two slow ones;
    the held one counts as pending but not in the wait estimate, and vip's requests get GLBs."""
    wait_until(lambda: status(service)["pending_reconstructions"] == 0, "earlier requests done", timeout_s=300)
    hog = fresh_address()
    with HeldUpload(service.port, hog, "alice", PASSWORD) as held:
        wait_until(lambda: status(service)["pending_reconstructions"] == 1, "the held upload admitted")
        for i in range(2):
            reply = slow_images(service.port, hog, "alice", PASSWORD, [unique(jpegs[0], f"door hog {i}"), jpegs[1]])
            assert reply.error is None and HASH_NAME.match(reply.name), reply.data[:60]
        now = status(service)
        assert now["pending_reconstructions"] == 1  # the held upload keeps its slot...
        assert now["estimated_wait_s"] == 0.0  # ...and adds nothing to the wait, though the pace is known
        with Conn(service.port) as other:
            assert other.login("vip", PASSWORD)[0] is True
            for i in range(3):
                reply = other.images([unique(jpegs[2], f"door other {i}"), jpegs[1]])
                assert reply.error is None, reply.error  # not ERROR_BUSY
                assert HASH_NAME.match(reply.name) and reply.data[:4] == b"glTF"
        assert held.sending and held.error is None, held.error
        assert status(service)["pending_reconstructions"] == 1
    wait_until(lambda: status(service)["pending_reconstructions"] == 0, "the held upload's slot given back")


# --- small frames ---------------------------------------------------------------------


def test_an_over_limit_login_is_refused_at_its_header_and_closed_and_the_address_logs_in(service):
    """LOGIN headers declaring more than 65536 bytes, no payload sent: each answered [false,false]
    for ERROR_PAYLOAD_TOO_LARGE (not a read timeout: nothing was waited for) and closed; six of
    them (over auth.max_failures) do not throttle the address, whose real LOGIN succeeds."""
    address = fresh_address()
    declared = [SMALL_FRAME_CAP + 1, SMALL_FRAME_CAP + 2, 1 << 20, 1 << 24, 1 << 31, 0xFFFFFFFF]
    for length in declared:
        with Conn(service.port, source=address, timeout=30) as c:
            c.send(struct.pack(">BI", LOGIN, length))
            assert json.loads(c.read_block()) == [False, False]
            assert c.at_eof()  # the server ended the connection: no payload was read
    last = recent_requests(service)[-len(declared) :]
    assert [(r["command"], r["outcome"]) for r in last] == [("LOGIN", "ERROR_PAYLOAD_TOO_LARGE")] * len(declared)
    with Conn(service.port, source=address) as c:
        assert c.login("alice", PASSWORD) == [True, False]


# --- downloads ------------------------------------------------------------------------


def test_downloads_held_by_one_address_leave_another_address_served(service, planted):
    """One address holds its max_downloads_per_address GET_GLB replies of a large GLB, taken a
    trickle at a time: its next GET_GLB is ERROR_BUSY, before and after another address's GET_GLB
    of the same GLB arrives whole; closing them gives the address its slots back."""
    big_hash, big = planted["big"]
    small_hash, small = planted["small"]
    per_address = service.args["proxy"].get("max_downloads_per_address", ProxySettings().max_downloads_per_address)
    holder, other = fresh_address(), fresh_address()
    with TrickleDownloads(service.port, holder, big_hash, per_address) as held:
        wait_until(lambda: None not in held.lengths(), "every held reply under way")
        assert held.lengths() == [len(big)] * per_address
        with Conn(service.port, source=holder) as extra:
            assert extra.get_glb(big_hash) == b"ERROR_BUSY"
        with Conn(service.port, source=other) as c:
            assert c.get_glb(big_hash) == big
        with Conn(service.port, source=holder) as extra:
            assert extra.get_glb(small_hash) == b"ERROR_BUSY"  # the held ones still hold every slot
        assert held.under_way(4 + len(big))

    def holder_served() -> bool:
        with Conn(service.port, source=holder) as c:
            return c.get_glb(small_hash) == small

    wait_until(holder_served, "the holder's slots given back")


# --- sessions -------------------------------------------------------------------------


def test_list_needs_a_login_on_its_own_connection(service, jpegs):
    """After a LOGIN on one connection, another from the same address uploads through the address
    binding but is refused LIST (before and after its IMAGE); LIST on the logged-in connection
    lists the user's GLB."""
    username = new_user(service, "door-lister")
    with Conn(service.port) as own:
        assert own.login(username, PASSWORD) == [True, False]
        assert own.list() == []
        with Conn(service.port, source=own.source) as bound:
            assert bound.list() == b"ERROR_NOT_LOGGED_IN"
            reply = bound.images([unique(jpegs[0], "door listed"), jpegs[1]])
            assert reply.error is None and HASH_NAME.match(reply.name), reply.data[:60]
            assert bound.list() == b"ERROR_NOT_LOGGED_IN"
        listed = own.list()
    assert [entry["hash"] for entry in listed] == [reply.name[:-4]]
    assert listed[0]["original_name"] == "images:2" and listed[0]["file_size"] == len(reply.data)
