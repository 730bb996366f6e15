"""`release_free_memory`: the object store's pages leave a replica's RSS, their contents stay (real mappings)."""

from __future__ import annotations

import mmap
import os
import sys
from pathlib import Path

import pytest

from serve_app.deployments.stage_deployment import (
    drop_mapped_pages,
    object_store_mappings,
    release_free_memory,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and madvise are Linux's")
PAGES = 256


def resident_kib(address: int) -> int:
    """Rss of the mapping of this process that starts at `address`, from /proc/self/smaps."""
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):
            inside = int(head.split("-")[0], 16) == address
        elif inside and head == "Rss:":
            return int(line.split()[1])
    raise AssertionError(f"no mapping at {address:#x}")


def mapped_file(folder: Path, name: str, *, shared: bool = True):
    """A file of PAGES pages mapped into this process, every page written (so resident)."""
    path = folder / name
    path.write_bytes(b"\0" * PAGES * mmap.PAGESIZE)
    with open(path, "r+b") as file:
        flags = mmap.MAP_SHARED if shared else mmap.MAP_PRIVATE
        view = mmap.mmap(file.fileno(), 0, flags=flags)
    for page in range(PAGES):
        view[page * mmap.PAGESIZE] = page % 251 + 1
    return view


def address_of(view: mmap.mmap) -> int:
    import ctypes

    return ctypes.addressof(ctypes.c_char.from_buffer(view))


@pytest.fixture
def shm_folder(tmp_path):
    folder = Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else tmp_path
    made = []
    yield folder, made
    for path in made:
        path.unlink(missing_ok=True)


def test_the_store_mapping_is_found_and_its_pages_leave_rss_with_their_contents_kept(
    shm_folder,
):
    folder, made = shm_folder
    name = f"plasma_release_test_{os.getpid()}"
    made.append(folder / name)
    view = mapped_file(folder, name)
    start = address_of(view)
    try:
        assert (start, PAGES * mmap.PAGESIZE) in object_store_mappings()
        assert resident_kib(start) >= PAGES * mmap.PAGESIZE // 1024
        release_free_memory()
        assert resident_kib(start) < PAGES * mmap.PAGESIZE // 1024 // 4
        assert [view[page * mmap.PAGESIZE] for page in range(PAGES)] == [page % 251 + 1 for page in range(PAGES)]
    finally:
        view.close()


def test_other_files_and_private_mappings_are_left_alone(shm_folder):
    folder, made = shm_folder
    other = f"not_the_store_{os.getpid()}"
    private = f"plasma_private_test_{os.getpid()}"
    made += [folder / other, folder / private]
    views = [mapped_file(folder, other), mapped_file(folder, private, shared=False)]
    try:
        starts = [address_of(view) for view in views]
        found = {start for start, _ in object_store_mappings()}
        assert not found & set(starts)
        release_free_memory()
        assert all(resident_kib(start) >= PAGES * mmap.PAGESIZE // 1024 for start in starts)
    finally:
        for view in views:
            view.close()


def test_a_missing_maps_file_means_no_mappings(tmp_path):
    assert object_store_mappings(str(tmp_path / "absent")) == []
    drop_mapped_pages([])  # nothing to do, no error
