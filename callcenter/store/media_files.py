"""The voicemail media folder: audio files stored by relative path with their SHA-256 (edge, blocking).

Files are written to a temporary name and renamed into place, so a crash never leaves half a file under
a stored name. Paths handed in are checked to stay inside the folder.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

from callcenter.errors import ValidationError
from callcenter.voicemail.ports import StoredMedia


class MediaFolder:
    """Audio under one root folder, named ``YYYY/MM/DD/<name><suffix>``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def save(self, source: Path | bytes, *, name: str, suffix: str, at: datetime) -> StoredMedia:
        """Copy ``source`` (a file or its bytes) in; the same name again replaces the file.

        :raises ValidationError: for an unsafe name or suffix.
        :raises OSError: when the folder cannot be written.
        """
        if not name.replace("-", "").replace("_", "").isalnum() or not suffix.startswith("."):
            raise ValidationError(f"unsafe media name {name!r}{suffix!r}")
        relative = f"{at:%Y/%m/%d}/{name}{suffix.lower()}"
        target = self.path(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out:
                if isinstance(source, bytes):
                    out.write(source)
                    digest.update(source)
                else:
                    with source.open("rb") as src:
                        while chunk := src.read(1 << 16):
                            out.write(chunk)
                            digest.update(chunk)
                out.flush()
                os.fsync(out.fileno())
            size = os.path.getsize(tmp_name)
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return StoredMedia(relative_path=relative, checksum=digest.hexdigest(), size_bytes=size)

    def path(self, relative: str) -> Path:
        """The absolute path of a stored file. :raises ValidationError: for a path leaving the folder."""
        root = self.root.resolve()
        full = (root / relative).resolve()
        if root not in full.parents:
            raise ValidationError(f"media path {relative!r} leaves the media folder")
        return full

    def delete(self, relative: str) -> bool:
        """Delete a stored file; ``False`` when it was already gone."""
        try:
            self.path(relative).unlink()
        except FileNotFoundError:
            return False
        return True

    def copy_out(self, relative: str, target: Path) -> None:
        shutil.copyfile(self.path(relative), target)
