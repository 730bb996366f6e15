"""devkit/processes.py: what /proc says of a process: its parent, state, CPU time and command line."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time

from devkit.processes import alive, command_text, cpu_seconds, cpu_times, descendants, stat_fields


def test_a_childs_parent_state_and_command_line_are_read():
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()", "a (b) c"], stdin=subprocess.PIPE)
    try:
        fields = stat_fields(child.pid)
        assert fields is not None and int(fields[1]) == os.getpid()  # its parent
        assert child.pid in descendants(os.getpid()) and alive(child.pid)
        assert command_text(child.pid) == f"{sys.executable} -c import sys; sys.stdin.read() a (b) c "
        assert 0.0 <= cpu_seconds(child.pid) < 5.0
    finally:
        child.kill()
    deadline = time.monotonic() + 10
    while stat_fields(child.pid)[0] != "Z" and time.monotonic() < deadline:  # killed, not yet reaped
        time.sleep(0.01)
    assert not alive(child.pid)  # a zombie does not run
    child.wait()
    assert stat_fields(child.pid) is None and cpu_seconds(child.pid) is None and command_text(child.pid) is None
    assert child.pid not in descendants(os.getpid())


NAMED = """
import ctypes, sys
ctypes.CDLL(None).prctl(15, b"x) 1 (y", 0, 0, 0)  # PR_SET_NAME: the name /proc/<pid>/stat shows in parentheses
print("named", flush=True)
sys.stdin.read()
"""


def test_a_parenthesis_in_the_process_name_does_not_shift_the_fields():
    child = subprocess.Popen([sys.executable, "-c", NAMED], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "named"
        with open(f"/proc/{child.pid}/stat") as stat:
            assert "(x) 1 (y)" in stat.read()
        fields = stat_fields(child.pid)
        assert fields[0] in "RS" and int(fields[1]) == os.getpid() and alive(child.pid)
        assert 0.0 <= cpu_seconds(child.pid) < 5.0
    finally:
        child.kill()
        child.wait()


def test_cpu_times_are_this_processs_own_not_its_childrens():
    subprocess.run([sys.executable, "-c", "bytearray(b'x') * (64 << 20)"], check=True)  # children's faults and CPU
    before = resource.getrusage(resource.RUSAGE_SELF)
    times = cpu_times(os.getpid())
    after = resource.getrusage(resource.RUSAGE_SELF)
    assert before.ru_minflt <= times.minor_faults <= after.ru_minflt
    assert before.ru_utime - 0.02 <= times.user_s <= after.ru_utime + 0.02  # /proc counts in ticks
    assert before.ru_stime - 0.02 <= times.system_s <= after.ru_stime + 0.02
    assert times.total_s == times.user_s + times.system_s
