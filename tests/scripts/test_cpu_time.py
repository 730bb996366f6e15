"""devkit/cpu_time.py: CPU seconds of a process tree over a stretch of time, by process kind."""

from __future__ import annotations

import subprocess
import sys

import pytest

from devkit.cpu_time import CONTROLLER, OTHERS, CpuMeter, process_kind
from devkit.processes import cpu_seconds

# burns CPU for the seconds given on each line of its stdin, answering "done" after each
BURNER = """
import sys, time
for line in sys.stdin:
    end = time.process_time() + float(line)
    while time.process_time() < end:
        pass
    print("done", flush=True)
"""


@pytest.mark.parametrize(
    ("cmdline", "kind"),
    [
        ("ray::ServeReplica:vggt:VGGTInference ", "VGGTInference"),
        ("ray::ServeReplica:service_without_model:GlbExporter", "GlbExporter"),
        ("ray::ServeReplica:vggt:TCPIngress.check_health", "TCPIngress"),  # titled by the call under way
        ("ray::ServeController", CONTROLLER),
        ("/venv/lib/python3.11/site-packages/ray/core/src/ray/gcs/gcs_server --log_dir=/tmp", OTHERS),
        ("ray::ProxyActor", OTHERS),
    ],
)
def test_a_process_is_named_by_its_deployment(cmdline, kind):
    assert process_kind(cmdline) == kind


def test_only_the_cpu_spent_inside_the_block_counts():
    burner = subprocess.Popen([sys.executable, "-c", BURNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:

        def burn(seconds: float) -> None:
            burner.stdin.write(f"{seconds}\n")
            burner.stdin.flush()
            assert burner.stdout.readline().strip() == "done"

        burn(0.6)  # before the meter: not counted
        with CpuMeter(burner.pid) as meter:
            burn(0.3)
        assert 0.25 <= meter.by_kind[OTHERS] < 0.5, meter.by_kind
        assert set(meter.by_kind) == {OTHERS}
        assert cpu_seconds(burner.pid) >= 0.85
    finally:
        burner.kill()
        burner.wait()
    assert cpu_seconds(burner.pid) is None  # gone (reaped)


def test_a_process_outside_the_tree_does_not_count():
    idle = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        with CpuMeter(idle.pid) as meter:
            other = subprocess.run([sys.executable, "-c", BURNER], input="0.3\n", capture_output=True, text=True)
        assert other.stdout.strip() == "done" and meter.by_kind[OTHERS] < 0.2  # only the idle root counted
    finally:
        idle.kill()
        idle.wait()


def test_a_process_started_inside_the_block_counts_from_its_start():
    spawner = subprocess.Popen(
        [sys.executable, "-c", f"import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', {BURNER!r}], "
         "stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True); p.stdin.write(sys.stdin.readline()); "
         "p.stdin.flush(); print(p.stdout.readline().strip(), flush=True); sys.stdin.readline()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        with CpuMeter(spawner.pid) as meter:
            spawner.stdin.write("0.4\n")
            spawner.stdin.flush()
            assert spawner.stdout.readline().strip() == "done"  # its child burned 0.4 s and waits
        assert meter.by_kind[OTHERS] >= 0.35, meter.by_kind
    finally:
        spawner.kill()
        spawner.wait()


# writes `megabytes` of fresh memory (each page zero-filled by the kernel on its first write), then waits
TOUCHER = """
import sys
sys.stdin.readline()
block = bytearray(b"\\x01") * (int(sys.argv[1]) << 20)
print("done", flush=True)
sys.stdin.readline()
"""


def test_fresh_pages_show_as_page_faults_and_kernel_time():
    toucher = subprocess.Popen(
        [sys.executable, "-c", TOUCHER, "256"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        with CpuMeter(toucher.pid) as meter:
            toucher.stdin.write("go\n")
            toucher.stdin.flush()
            assert toucher.stdout.readline().strip() == "done"
        pages = (256 << 20) // 4096
        assert pages * 0.9 <= meter.faults_by_kind[OTHERS] < pages * 3, meter.faults_by_kind
        assert 0 < meter.kernel_by_kind[OTHERS] <= meter.by_kind[OTHERS], (meter.kernel_by_kind, meter.by_kind)
    finally:
        toucher.kill()
        toucher.wait()


def test_a_process_that_only_computes_faults_little():
    burner = subprocess.Popen([sys.executable, "-c", BURNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        burner.stdin.write("0.01\n")  # its start, imports and first allocations: before the meter
        burner.stdin.flush()
        assert burner.stdout.readline().strip() == "done"
        with CpuMeter(burner.pid) as meter:
            burner.stdin.write("0.3\n")
            burner.stdin.flush()
            assert burner.stdout.readline().strip() == "done"
        assert meter.faults_by_kind[OTHERS] < 1000, meter.faults_by_kind  # (its clock reads are system calls)
        assert meter.by_kind[OTHERS] >= 0.25
    finally:
        burner.kill()
        burner.wait()
