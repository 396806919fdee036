"""The voicemail media folder: audio files stored by relative path with their SHA-256, and the intake
notes of voicemails not yet stored (edge, blocking).

Files are written to a temporary name, flushed to disk and renamed into place, so a crash never leaves
half a file under a stored name. Paths handed in are checked to stay inside the folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Final

from callcenter.errors import ValidationError
from callcenter.model.vocabulary import VoicemailStatus
from callcenter.voicemail.ports import StoredMedia
from callcenter.voicemail.records import Voicemail

logger = logging.getLogger(__name__)

#: The version of an intake note's JSON (a note of another version is set aside, not guessed at).
INTAKE_VERSION: Final = 1


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
        digest = hashlib.sha256()

        def copy(out: BinaryIO) -> None:
            if isinstance(source, bytes):
                out.write(source)
                digest.update(source)
                return
            with source.open("rb") as src:
                while chunk := src.read(1 << 16):
                    out.write(chunk)
                    digest.update(chunk)

        size = _write_durably(target, copy)
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


class IntakeFolder:
    """:class:`callcenter.voicemail.ports.VoicemailIntake` as one JSON file per voicemail in ``root``
    (the ``.intake`` folder of the media folder: on the same disk as the audio it describes).

    A note that cannot be read (cut short by a full disk, edited by hand) is renamed
    ``<name>.unreadable`` and logged: it is kept for a person, never deleted, never retried forever.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def keep(self, voicemail: Voicemail, *, at: datetime) -> None:
        note = {"version": INTAKE_VERSION, "kept_at": at.isoformat(), "voicemail": _note_of(voicemail)}
        data = json.dumps(note, sort_keys=True).encode()
        _write_durably(self._file(voicemail.id), lambda out: out.write(data), sync_folder=True)

    def done(self, voicemail_id: str) -> None:
        self._file(voicemail_id).unlink(missing_ok=True)

    def has(self, voicemail_id: str) -> bool:
        return self._file(voicemail_id).is_file()

    def owed(self, *, kept_by: datetime | None = None) -> list[Voicemail]:
        if not self.root.is_dir():
            return []
        noted: list[tuple[datetime, Voicemail]] = []
        for file in sorted(self.root.glob("vm-*.json")):
            try:
                kept_at, voicemail = _read_note(file)
            except FileNotFoundError:
                continue  # done meanwhile
            except (OSError, ValueError, KeyError, TypeError) as exc:
                aside = file.with_name(file.name + ".unreadable")
                logger.error(
                    "voicemail intake: note %s cannot be read (%s); set aside as %s", file, exc, aside
                )
                file.replace(aside)
                continue
            if kept_by is None or kept_at <= kept_by:
                noted.append((kept_at, voicemail))
        return [v for _, v in sorted(noted, key=lambda n: (n[0], n[1].id))]

    def _file(self, voicemail_id: str) -> Path:
        if not voicemail_id.startswith("vm-") or not voicemail_id[3:].isalnum():
            raise ValidationError(f"unsafe voicemail id {voicemail_id!r}")
        return self.root / f"{voicemail_id}.json"


def _note_of(voicemail: Voicemail) -> dict[str, Any]:
    return {
        "id": voicemail.id,
        "call_id": voicemail.call_id,
        "queue": voicemail.queue,
        "caller": voicemail.caller,
        "recorded_at": voicemail.recorded_at.isoformat(),
        "media_path": voicemail.media_path,
        "checksum": voicemail.checksum,
        "size_bytes": voicemail.size_bytes,
        "duration_s": voicemail.duration_s,
    }


def _read_note(file: Path) -> tuple[datetime, Voicemail]:
    """:raises ValueError, KeyError, TypeError: for a note that is not one this version wrote."""
    note = json.loads(file.read_bytes())
    if note["version"] != INTAKE_VERSION:
        raise ValueError(f"intake note version {note['version']!r}, not {INTAKE_VERSION}")
    v = note["voicemail"]
    kept_at = _aware(note["kept_at"])
    voicemail = Voicemail(
        id=str(v["id"]),
        call_id=None if v["call_id"] is None else str(v["call_id"]),
        queue=None if v["queue"] is None else str(v["queue"]),
        caller=str(v["caller"]),
        recorded_at=_aware(v["recorded_at"]),
        media_path=str(v["media_path"]),
        checksum=str(v["checksum"]),
        size_bytes=int(v["size_bytes"]),
        duration_s=float(v["duration_s"]),
        status=VoicemailStatus.RECORDED,
        updated_at=kept_at,
    )
    if f"{voicemail.id}.json" != file.name:
        raise ValueError(f"the note names voicemail {voicemail.id!r}")
    return kept_at, voicemail


def _aware(text: Any) -> datetime:
    at = datetime.fromisoformat(text)
    if at.tzinfo is None:
        raise ValueError(f"time {text!r} has no offset")
    return at


def _write_durably(target: Path, write: Callable[[BinaryIO], object], *, sync_folder: bool = False) -> int:
    """Write ``target`` through a temporary file in its folder: flushed to disk, then renamed into
    place (with ``sync_folder`` the rename itself is flushed too). Returns the size written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        size = os.path.getsize(tmp_name)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    if sync_folder:
        folder = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    return size
