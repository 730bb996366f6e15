"""The Prometheus alerts (config/prometheus/): promtool accepts the rules and the example config,
the rules pass their unit tests, and every series they read is one the service or the installed
Ray Serve exports, so a renamed metric fails here rather than silencing an alert."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import ray.serve
import yaml
from ray.util.metrics import Counter, Gauge, Histogram

from serve_app.metrics import ServiceMetrics

CONFIG = Path(__file__).resolve().parents[1] / "config" / "prometheus"
ALERTS = CONFIG / "alerts.yml"
ALERTS_TEST = CONFIG / "alerts_test.yml"
PROMETHEUS = CONFIG / "prometheus.yml"

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not found: install Debian's `prometheus` package (scripts/test.sh does where it can)",
)

# Series suffixes Prometheus sees for each kind of Ray metric (Ray adds `_total` to counters).
SUFFIXES = {Counter: ("_total",), Histogram: ("_bucket", "_sum", "_count"), Gauge: ("",)}
RAY_METRIC = re.compile(r"metrics\.(Counter|Gauge|Histogram)\(\s*\"([a-z_]+)\"")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *args], check=False, capture_output=True, text=True, timeout=120, cwd=CONFIG)


def alert_rules() -> list[dict]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def series_read(expr: str) -> set[str]:
    return set(re.findall(r"\b(ray_[a-z_]+)\b", expr))


def exported_series() -> set[str]:
    """Every series name (as scraped) of our metrics and of the installed Ray Serve's."""
    kinds = {"Counter": Counter, "Gauge": Gauge, "Histogram": Histogram}
    metrics = [
        (metric.info["name"], next(kind for kind in SUFFIXES if isinstance(metric, kind)))
        for metric in vars(ServiceMetrics()).values()
    ]
    for source in Path(ray.serve.__file__).parent.rglob("*.py"):
        metrics += [(name, kinds[kind]) for kind, name in RAY_METRIC.findall(source.read_text())]
    return {f"ray_{name}{suffix}" for name, kind in metrics for suffix in SUFFIXES[kind]}


@needs_promtool
def test_promtool_accepts_the_rules_and_the_example_config():
    for args in (("check", "rules", ALERTS.name), ("check", "config", PROMETHEUS.name)):
        result = promtool(*args)
        assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_the_alerts_pass_their_unit_tests():
    result = promtool("test", "rules", ALERTS_TEST.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_quiet():
    """Each alert has a test case where it fires (for application `hot`) with an input that
    should not fire it next to it (application `calm`)."""
    alerts = {rule["alert"] for rule in alert_rules()}
    tests = yaml.safe_load(ALERTS_TEST.read_text())["tests"]
    fired: set[str] = set()
    for case in tests:
        inputs = " ".join(series["series"] for series in case["input_series"])
        for check in case["alert_rule_test"]:
            expected = check["exp_alerts"]
            assert all(alert["exp_labels"]["application"] == "hot" for alert in expected), check
            if expected:
                assert 'application="calm"' in inputs, f"{check['alertname']} has no input that must stay quiet"
                fired.add(check["alertname"])
    assert fired == alerts


def test_the_alerts_read_only_series_that_are_exported():
    exported = exported_series()
    assert {"ray_vggt_requests_total", "ray_serve_deployment_replica_starts_total"} <= exported
    read = set().union(*(series_read(rule["expr"]) for rule in alert_rules()))
    assert read, "no series found in the alert expressions"
    assert not read - exported, f"alerts read series nobody exports: {sorted(read - exported)}"


def test_a_renamed_or_misspelled_series_is_caught():
    assert series_read("rate(ray_vggt_requests_total[5m]) + ray_vggt_request_duration_seconds_bucket") == {
        "ray_vggt_requests_total",
        "ray_vggt_request_duration_seconds_bucket",
    }
    exported = exported_series()
    # Counters count only as `_total`: Ray's gauge copy under the bare name can be switched off
    # (RAY_EXPORT_COUNTER_AS_GAUGE=0).
    for wrong in (
        "ray_vggt_requests",
        "ray_vggt_model_loaded_total",
        "ray_vggt_request_duration_seconds",
        "ray_serve_deployment_replica_starts",
        "ray_serve_deployment_replica_restarts_total",
    ):
        assert wrong not in exported
