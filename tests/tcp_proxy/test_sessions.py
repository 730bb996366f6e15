"""Session table: connection logins, address bindings and their time to live."""

from __future__ import annotations

from tcp_proxy.backend import User
from tcp_proxy.sessions import SessionTable, normalize_address

ALICE = User(1, "alice", False)
BOB = User(2, "bob", True)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def table(**kw):
    clock = Clock()
    return SessionTable(ttl_s=kw.pop("ttl_s", 60.0), clock=clock, **kw), clock


def test_connection_login_holds_for_that_connection():
    t, _ = table(bind_to_address=False)
    t.login("c1", "10.0.0.1", ALICE)
    assert t.user_for("c1", "10.0.0.1") == ALICE
    assert t.user_for("c2", "10.0.0.1") is None  # binding off: a new connection is anonymous
    t.drop_connection("c1")
    assert t.user_for("c1", "10.0.0.1") is None


def test_address_binding_expires_after_ttl():
    t, clock = table()
    t.login("c1", "10.0.0.1", ALICE)
    t.drop_connection("c1")
    clock.now += 59
    assert t.user_for("c2", "10.0.0.1") == ALICE
    assert t.user_for("c2", "10.0.0.2") is None
    clock.now += 59.5  # sliding: the use above renewed it
    assert t.user_for("c3", "10.0.0.1") == ALICE
    clock.now += 60
    assert t.user_for("c4", "10.0.0.1") is None
    assert t.bound_addresses == 0


def test_connection_login_outlives_the_address_ttl():
    t, clock = table()
    t.login("c1", "10.0.0.1", ALICE)
    clock.now += 3600
    assert t.user_for("c1", "10.0.0.1") == ALICE
    assert t.user_for("c2", "10.0.0.1") is None


def test_failed_login_keeps_binding():
    # the server calls login() only on success, so a failure changes nothing
    t, _ = table()
    t.login("c1", "10.0.0.1", ALICE)
    assert t.user_for("c2", "10.0.0.1") == ALICE


def test_later_login_from_same_address_rebinds():
    t, _ = table()
    t.login("c1", "10.0.0.1", ALICE)
    t.login("c2", "10.0.0.1", BOB)  # e.g. two phones behind one NAT
    assert t.user_for("c1", "10.0.0.1") == ALICE  # its own connection login wins
    assert t.user_for("c3", "10.0.0.1") == BOB


def test_ipv4_mapped_addresses_match_plain_ipv4():
    t, _ = table()
    t.login("c1", "::ffff:10.0.0.1", ALICE)
    assert t.user_for("c2", "10.0.0.1") == ALICE
    assert normalize_address("fe80::1%eth0") == "fe80::1"
    assert normalize_address("not an ip") == "not an ip"


def test_expired_entries_are_purged_on_login():
    t, clock = table(ttl_s=10)
    for i in range(5):
        t.login(f"c{i}", f"10.0.0.{i}", ALICE)
    clock.now += 11
    t.login("x", "10.0.1.1", BOB)
    assert t.bound_addresses == 1
