"""Metric names follow Prometheus conventions, and the shipped Grafana dashboard charts every one."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from ray.util.metrics import Counter, Histogram

from serve_app.deployments.tcp_ingress import spool_free_bytes
from serve_app.metrics import ServiceMetrics

DASHBOARD = Path(__file__).resolve().parents[1] / "config" / "grafana" / "vggt_service.json"


@pytest.fixture(scope="module")
def metrics() -> dict[str, object]:
    return {metric.info["name"]: metric for metric in vars(ServiceMetrics()).values()}


def test_names_follow_prometheus_conventions(metrics):
    for name, metric in metrics.items():
        assert re.fullmatch(r"vggt_[a-z_]+", name), name
        assert not name.endswith("_total"), name  # Ray adds it to counters
        assert not re.search(r"_(s|ms|latency|bytes_in|bytes_out)$", name), name  # base units, spelled out
        if isinstance(metric, Histogram) and "duration" in name:
            assert name.endswith("_seconds"), name
        if isinstance(metric, Counter) and "bytes" in name:
            assert name.endswith("_bytes"), name


def test_the_dashboard_charts_every_metric_and_only_those(metrics):
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert dashboard["uid"] and all(panel["datasource"]["uid"] == "${datasource}" for panel in dashboard["panels"])
    charted = set()
    for expr in exprs:
        assert expr.count("(") == expr.count(")"), expr
        for series in re.findall(r"\bray_(vggt_[a-z_]+)", expr):
            base = re.sub(r"_(total|bucket|sum|count)$", "", series)
            assert base in metrics, f"the dashboard reads {series}, which the service does not export"
            if isinstance(metrics[base], Counter):
                assert series == f"{base}_total", series
            if isinstance(metrics[base], Histogram):
                assert series == f"{base}_bucket", series
            charted.add(base)
    assert charted == set(metrics)


class Recorded:
    """Stands in for one Ray metric object: keeps what it was given."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, float, dict | None]] = []
        self.fail = fail

    def _record(self, kind: str, value: float, tags: dict | None) -> None:
        if self.fail:
            raise RuntimeError("metrics backend down")
        self.calls.append((kind, value, tags))

    def inc(self, value: float, tags: dict | None = None) -> None:
        self._record("inc", value, tags)

    def set(self, value: float, tags: dict | None = None) -> None:
        self._record("set", value, tags)


def test_storage_errors_and_spool_space_are_recorded(metrics):
    assert metrics["vggt_storage_errors"].info["tag_keys"] == ("operation",)
    service = ServiceMetrics()
    service.storage_errors, service.spool_free_bytes = Recorded(), Recorded()
    service.record_storage_error("save")
    service.record_storage_error("read")
    service.set_spool_free_bytes(5 << 30)
    assert service.storage_errors.calls == [("inc", 1, {"operation": "save"}), ("inc", 1, {"operation": "read"})]
    assert service.spool_free_bytes.calls == [("set", 5 << 30, None)]
    service.storage_errors, service.spool_free_bytes = Recorded(fail=True), Recorded(fail=True)
    service.record_storage_error("save")  # a failing metric never fails the caller
    service.set_spool_free_bytes(1)


def test_spool_free_bytes_is_the_free_space_of_the_folders_disk(tmp_path):
    free = spool_free_bytes(tmp_path)
    assert free is not None and 0 < free <= shutil.disk_usage(tmp_path).total
    assert spool_free_bytes(str(tmp_path)) is not None
    assert spool_free_bytes(tmp_path / "gone") is None  # removed (the server closed): nothing to report
    assert spool_free_bytes(None) is None  # not listening yet
