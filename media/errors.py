"""The exception tree of ``media`` (no call-centre knowledge).

::

    MediaError
    ├── AudioDecodeError      a file that is empty, truncated, not audio, or in a format we cannot read
    │   └── EmptyAudioError   a well-formed file without a single sample (a recording of nothing)
    └── ModelUnavailableError the speech-to-text model named cannot be loaded (missing path, bad folder)
"""

from __future__ import annotations


class MediaError(Exception):
    """Base of every error ``media`` raises on purpose."""


class AudioDecodeError(MediaError):
    """The file could not be decoded into audio; the message says why, for people."""


class EmptyAudioError(AudioDecodeError):
    """The file is audio but holds no samples, e.g. the 44-byte WAV of a recording that got no sound."""


class ModelUnavailableError(MediaError):
    """The Whisper model named cannot be loaded; the message names what was tried."""
