"""NF_HOME on a size-limited ext4 image, loop-mounted, so that a disk can really fill up."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from opsdrill.errors import ServiceError, UsageError
from opsdrill.polling import poll
from opsdrill.targets.drill_parts import Say

__all__ = ["IMAGE", "DataFilesystem", "parse_size"]

#: the image's name in the state directory
IMAGE = "data-fs.img"


def parse_size(text: str) -> int:
    """'64m', '1g', '65536k' or bytes -> bytes; at least 16 MiB (ext4 needs room for itself)."""
    match = re.fullmatch(r"\s*(\d+)\s*([kmgKMG]?)[iI]?[bB]?\s*", text)
    if not match:
        raise UsageError(f"data filesystem size {text!r} is not a size; use e.g. 64m or 1g")
    size = int(match[1]) * 1024 ** " kmg".index(match[2].lower() or " ")
    if size < 16 * 1024**2:
        raise UsageError(f"data filesystem size {text!r} is below 16m; ext4 needs more than that")
    return size


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False)


class DataFilesystem:
    """NF_HOME on a size-limited ext4 image, loop-mounted: a disk that can really fill up.

    ext4 rather than tmpfs because the contents survive `down` (models stay trained) and
    node_exporter reports it like any disk, so HighDiskUsage fires for real (it ignores tmpfs).
    Reserved blocks are 0 %: the app runs as root here and would otherwise write into them.
    """

    def __init__(self, image: Path, mountpoint: Path, size: str) -> None:
        self.image, self.mountpoint, self.size = image, mountpoint, size

    @staticmethod
    def supported() -> str | None:
        """None when this machine can loop-mount ext4, else why not."""
        if os.geteuid() != 0:
            return "a loop mount needs root"
        missing = [b for b in ("mkfs.ext4", "mount", "umount") if shutil.which(b) is None]
        if missing:
            return f"missing {', '.join(missing)} (apt-get install e2fsprogs mount)"
        return None

    def mounted(self) -> bool:
        """True when our image is what is mounted on the mount point."""
        if not os.path.ismount(self.mountpoint):
            return False
        found = _run(["findmnt", "-n", "-o", "SOURCE", "--mountpoint", str(self.mountpoint)])
        loop = found.stdout.strip()
        back = _run(["losetup", "-n", "-O", "BACK-FILE", loop]).stdout.strip() if loop else ""
        return not back or Path(back.split(" (")[0]) == self.image

    def mount(self, say: Say) -> None:
        """Create the image once, move an existing home onto it, mount it on home."""
        if os.path.ismount(self.mountpoint):
            if not self.mounted():
                raise ServiceError(f"{self.mountpoint} is a mount point of something else; "
                                   f"unmount it before 'opsdrill up'")  # fmt: skip
            say(f"{'data fs':<18} {self.mountpoint} still mounted from an earlier run; reused")
            return
        if not self.image.exists():
            self._create()
        if self.mountpoint.exists() and any(self.mountpoint.iterdir()):
            self._move_existing_home(say)
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        self._mount_at(self.mountpoint)
        say(f"{'data fs':<18} {self.size} ext4 image mounted on {self.mountpoint}")

    def _create(self) -> None:
        self.image.parent.mkdir(parents=True, exist_ok=True)
        with open(self.image, "wb") as fh:
            fh.truncate(parse_size(self.size))
        done = _run(["mkfs.ext4", "-q", "-F", "-m", "0", "-L", "opsdrill-data", str(self.image)])
        if done.returncode != 0:
            self.image.unlink(missing_ok=True)
            raise ServiceError(f"mkfs.ext4 on {self.image} failed: {done.stderr.strip()}")

    def _mount_at(self, where: Path) -> None:
        done = _run(["mount", "-o", "loop", str(self.image), str(where)])
        if done.returncode != 0:
            raise ServiceError(
                f"cannot loop-mount {self.image} on {where}: {done.stderr.strip()}; "
                "is /dev/loop-control available?"
            )
        where.chmod(0o755)

    def _move_existing_home(self, say: Say) -> None:
        """A stack created without the opt-in keeps its models: copy them onto the image."""
        staging = self.image.with_suffix(".mnt")
        staging.mkdir(exist_ok=True)
        self._mount_at(staging)
        try:
            shutil.copytree(self.mountpoint, staging, symlinks=True, dirs_exist_ok=True)
        finally:
            _run(["umount", str(staging)])
            staging.rmdir()
        shutil.rmtree(self.mountpoint)
        say(f"{'data fs':<18} existing {self.mountpoint} moved onto the image")

    def copy_out(self, destination: Path) -> None:
        """Copy the image's contents into `destination` (unmounted first): the way back for
        a home a drill moved onto the image. Copied beside it, then swapped in."""
        staging = self.image.with_suffix(".mnt")
        staging.mkdir(exist_ok=True)
        self._mount_at(staging)
        fresh = destination.with_name(destination.name + ".from-image")
        shutil.rmtree(fresh, ignore_errors=True)
        try:
            skip = shutil.ignore_patterns("lost+found")
            shutil.copytree(staging, fresh, symlinks=True, ignore=skip)
        finally:
            _run(["umount", str(staging)])
            staging.rmdir()
        fresh.chmod(0o755)
        shutil.rmtree(destination, ignore_errors=True)
        fresh.rename(destination)

    def unmount(self, say: Say, *, lazy: bool = True) -> None:
        """Unmount; lazily if something still holds a file open there (it is said so)."""
        if not os.path.ismount(self.mountpoint):
            return
        done = _run(["umount", str(self.mountpoint)])
        if done.returncode != 0 and not lazy:  # a stopped app's last children still leaving

            def unmounted() -> bool | None:
                nonlocal done
                done = _run(["umount", str(self.mountpoint)])
                return done.returncode == 0 or None

            poll(unmounted, 15.0, interval=0.2)
        if done.returncode != 0 and not lazy:
            raise ServiceError(
                f"cannot unmount {self.mountpoint}: {done.stderr.strip()}; "
                f"find what holds it with 'fuser -vm {self.mountpoint}'"
            )
        if done.returncode != 0:
            _run(["umount", "-l", str(self.mountpoint)])
            say(f"{'data fs':<18} busy ({done.stderr.strip()}); detached lazily")
