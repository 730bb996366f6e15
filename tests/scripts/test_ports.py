"""Ports for the services checks and benchmarks start: never in the kernel's ephemeral range, free when picked."""

from __future__ import annotations

import socket

import pytest

from devkit import ports
from devkit.ports import PICK_FROM, candidate_ports, ephemeral_range, free_port


@pytest.mark.parametrize(
    ("port", "candidate"),
    [
        (PICK_FROM[0] - 1, False),  # Ray's worker ports end below
        (PICK_FROM[0], True),
        (29999, True),  # under the ephemeral range
        (30000, False),  # its first port
        (30001, False),
        (39999, False),
        (40000, False),  # its last port
        (40001, True),  # over it
        (PICK_FROM[1], True),
    ],
)
def test_candidates_leave_out_the_ephemeral_range_at_both_ends(port, candidate):
    assert (port in candidate_ports((30000, 40000))) is candidate


def test_ports_picked_already_are_left_out():
    assert 25000 not in candidate_ports((30000, 40000), taken=(25000,))
    assert 25001 in candidate_ports((30000, 40000), taken=(25000,))


def test_the_range_is_read_from_the_kernel_file(tmp_path):
    path = tmp_path / "ip_local_port_range"
    path.write_text("32768\t60999\n")
    assert ephemeral_range(path) == (32768, 60999)
    path.write_text("1024 65000\n")
    assert ephemeral_range(path) == (1024, 65000)


@pytest.mark.parametrize("content", [None, "", "not ports\n", "1 2 3\n"])
def test_an_unreadable_range_is_taken_as_linux_default(tmp_path, content):
    path = tmp_path / "ip_local_port_range"
    if content is not None:
        path.write_text(content)
    assert ephemeral_range(path) == ports.LINUX_EPHEMERAL


def test_a_picked_port_is_outside_this_machine_s_range_and_can_be_listened_on():
    low, high = ephemeral_range()
    for _ in range(20):
        port = free_port()
        assert PICK_FROM[0] <= port <= PICK_FROM[1] and not low <= port <= high
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
            s.listen()


def test_a_port_in_use_is_not_picked(monkeypatch):
    with socket.socket() as held, socket.socket() as released:
        held.bind(("0.0.0.0", 0))
        busy = held.getsockname()[1]
        held.listen()
        released.bind(("0.0.0.0", 0))
        other = released.getsockname()[1]
        released.close()
        # only two candidates: the busy one must be passed over for the other
        monkeypatch.setattr(ports, "candidate_ports", lambda _span, _taken: [busy, other])
        assert {free_port() for _ in range(10)} == {other}


def test_no_room_outside_the_range_is_a_clear_error():
    with pytest.raises(RuntimeError, match="outside the ephemeral range 1024-65535"):
        free_port(ephemeral=(1024, 65535))
