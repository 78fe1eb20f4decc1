"""Find image files under a root, sorted, skipping hidden entries, following symlinks safely."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from lpipscli.errors import PairingError

#: Accepted image extensions (matched case-insensitively).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def find_images(root: Path) -> list[PurePosixPath]:
    """Image files under ``root``, as sorted relative POSIX paths.

    Hidden files and folders (names starting with ``.``) are skipped; symlinked folders are followed once
    (a symlink loop is reported, not followed forever).

    Raises:
        PairingError: ``root`` does not exist, is not a folder, or holds no image file.
    """
    if not root.exists():
        raise PairingError(f"{root}: no such file or folder")
    if not root.is_dir():
        raise PairingError(f"{root}: not a folder")
    found: list[PurePosixPath] = []
    seen_dirs: set[str] = set()
    loops: list[str] = []

    def on_error(exc: OSError) -> None:
        raise PairingError(f"{exc.filename}: cannot list folder: {exc.strerror}")

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=on_error):
        real = os.path.realpath(dirpath)
        if real in seen_dirs:
            loops.append(dirpath)
            dirnames[:] = []
            continue
        seen_dirs.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel_dir = PurePosixPath(Path(dirpath).relative_to(root).as_posix())
        for name in filenames:
            if name.startswith(".") or not is_image_name(name):
                continue
            found.append(rel_dir / name if str(rel_dir) != "." else PurePosixPath(name))
    if loops:
        raise PairingError(f"{root}: symlink loop at {loops[0]} (a folder that links back to itself)")
    if not found:
        raise PairingError(
            f"{root}: no image files found (accepted extensions: {', '.join(IMAGE_EXTENSIONS)}, any case)"
        )
    return sorted(found, key=str)
