"""scripts/bench_page.py's parts without a browser: the page server and the report."""

from __future__ import annotations

import urllib.request

from devkit import page_bench


def test_the_server_serves_the_share_page_with_the_report_and_its_glb(tmp_path):
    server = page_bench.SharePageServer(tmp_path)
    try:
        glb, points = page_bench.default_glb(1, max_points=500)
        assert points == 500
        url = server.add(glb, "scan")
        page = urllib.request.urlopen(url, timeout=30).read().decode()
        assert 'import { CloudViewer } from "/app/viewer.js"' in page and 'fetch("/report?"' in page
        assert urllib.request.urlopen(url + ".glb", timeout=30).read() == glb
        viewer = urllib.request.urlopen(url.split("/g/")[0] + "/app/viewer.js", timeout=30).read()
        assert b"export class CloudViewer" in viewer
    finally:
        server.close()


def test_the_report_compares_with_the_baseline_and_the_goal():
    def load(painted_ms: float, points: int) -> page_bench.PageLoad:
        return page_bench.PageLoad(drawn_ms=painted_ms - 50, painted_ms=painted_ms, glb_ms=100.0, points=points)

    loads = {"tiny": [load(400, 1000), load(600, 1000), load(500, 1000)], "default": [load(1000, 800_000)] * 3}
    text = page_bench.report(loads, goal_ms=1500)
    assert "| default | 800,000 | 100 | 950 | 1000 |" in text
    assert "2.00x" in text and "the points add 500 ms" in text and "goal 1500 ms: met" in text
    assert "NOT met" in page_bench.report(loads, goal_ms=999)
