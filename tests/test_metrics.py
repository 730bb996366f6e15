"""Metric names follow Prometheus conventions, and the shipped Grafana dashboard charts every one."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from ray.util.metrics import Counter, Histogram

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
