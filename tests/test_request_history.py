"""RequestHistory: the last answered requests, and one request metric per answer."""

from __future__ import annotations

from serve_app.request_history import RequestHistory
from tcp_proxy.server import RequestRecord


class Recorder:
    def __init__(self) -> None:
        self.requests: list[tuple] = []

    def record_request(self, command, outcome, *, bytes_in=0, bytes_out=0, latency_s=None) -> None:
        self.requests.append((command, outcome, bytes_in, bytes_out, latency_s))


def test_keeps_the_last_requests_and_records_each():
    recorder = Recorder()
    history = RequestHistory(recorder, size=2)  # type: ignore[arg-type]
    for i in range(3):
        history.record(RequestRecord("IMAGE", "alice", "OK", 100 + i, 10, 0.5, {"inference": 0.25}))
    recent = history.recent()
    assert [r["bytes_in"] for r in recent] == [101, 102]  # the oldest dropped
    assert recent[-1] == {
        "command": "IMAGE",
        "outcome": "OK",
        "seconds": 0.5,
        "bytes_in": 102,
        "bytes_out": 10,
        "timings": {"inference": 0.25},
    }
    assert recorder.requests == [("IMAGE", "OK", 100 + i, 10, 0.5) for i in range(3)]
