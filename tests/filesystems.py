"""File systems that fail, for store tests: a small tmpfs that fills, an ext4 turned read-only.

Both are mounted by the test (we run as root). Where mounting is impossible the test fails loudly,
naming what is missing: a store test that silently skipped would hide the very loss it exists for.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


def _run(*command: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed ({result.returncode}): {result.stderr.strip()} "
                    "(these tests need root and mount(8); they do not skip)")


def _unmount(mountpoint: Path) -> None:
    if os.path.ismount(mountpoint):
        subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True, check=False)


@dataclass
class FillableDisk:
    """A small tmpfs: :meth:`fill` takes every free byte, :meth:`free` gives it back."""

    mountpoint: Path

    @property
    def ballast(self) -> Path:
        """The file that takes the free space."""
        return self.mountpoint / "ballast"

    def fill(self) -> None:
        """Write the ballast until the file system says ENOSPC."""
        chunk = b"\0" * 65536
        fd = os.open(self.ballast, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (65536, 4096, 512, 1):
                try:
                    while True:
                        os.write(fd, chunk[:size])
                except OSError as err:
                    if err.errno != errno.ENOSPC:
                        raise
        finally:
            os.close(fd)

    def free(self) -> None:
        """Delete the ballast: the space is back."""
        self.ballast.unlink(missing_ok=True)


@contextlib.contextmanager
def fillable_disk(mountpoint: Path, size: str = "24m") -> Iterator[FillableDisk]:
    """A tmpfs of ``size`` mounted at ``mountpoint`` for the duration."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    _run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(mountpoint))
    try:
        yield FillableDisk(mountpoint)
    finally:
        _unmount(mountpoint)


@dataclass
class FailingExt4:
    """An ext4 image loop-mounted with ``errors=remount-ro``.

    :meth:`fail` raises a real file system error (the kernel's ``trigger_fs_error``), after which
    the kernel keeps the file system read-only, as after a disk error in production. :meth:`repair`
    does what an operator does: unmount, ``e2fsck``, and mount the repaired file system again at
    the same path (from a copy of the image: the failed mount lingers while the daemon still has
    files open on it).
    """

    mountpoint: Path
    image: Path
    generation: int = 0

    def mount(self) -> None:
        """Mount the current image at the mountpoint."""
        _run("mount", "-o", "loop,errors=remount-ro", str(self.image), str(self.mountpoint))

    def fail(self) -> None:
        """Trigger a file system error: from now on writes fail with EROFS."""
        device = Path(_source_of(self.mountpoint)).name
        trigger = Path("/sys/fs/ext4") / device / "trigger_fs_error"
        if not trigger.exists():
            pytest.fail(f"{trigger} is missing: this kernel cannot simulate an ext4 error")
        trigger.write_text("alertline store test\n")

    def repair(self) -> None:
        """Unmount, check and mount again (a copy, see the class docstring)."""
        _unmount(self.mountpoint)
        self.generation += 1
        repaired = self.image.with_name(f"{self.image.stem}-{self.generation}.img")
        shutil.copyfile(self.image, repaired)
        subprocess.run(["e2fsck", "-fy", str(repaired)], capture_output=True, check=False)
        self.image = repaired
        self.mount()


def _source_of(mountpoint: Path) -> str:
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) > 1 and fields[1] == str(mountpoint):
            return fields[0]
    pytest.fail(f"{mountpoint} is not mounted")


@contextlib.contextmanager
def failing_ext4(workdir: Path, size_mb: int = 64) -> Iterator[FailingExt4]:
    """An ext4 file system of ``size_mb`` in ``workdir``, mounted at ``workdir/mnt``."""
    workdir.mkdir(parents=True, exist_ok=True)
    image = workdir / "disk.img"
    with image.open("wb") as out:
        out.truncate(size_mb * 1024 * 1024)
    _run("mkfs.ext4", "-q", "-F", str(image))
    mountpoint = workdir / "mnt"
    mountpoint.mkdir(exist_ok=True)
    disk = FailingExt4(mountpoint, image)
    disk.mount()
    try:
        yield disk
    finally:
        _unmount(mountpoint)
