"""RTP streams written as pcap files for SIPp's ``play_pcap_audio`` (test helper, real-Asterisk tier).

SIPp plays a pcap's UDP payloads to the media address the other side's SDP gave, paced by the
capture's timestamps. These helpers build such files at run time (nothing binary is kept in the
repository): G.711 mu-law speech (payload type 0, 160 bytes every 20 ms) and an RFC 2833 / RFC 4733 key
press (``telephone-event``, payload type 101 as our SIPp scenarios offer it). Frames are Ethernet, IPv4,
UDP, RTP; the addresses in them are placeholders (SIPp replaces them).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

RATE: Final = 8000
FRAME_SAMPLES: Final = 160  # 20 ms at 8 kHz
PCMU: Final = 0
TELEPHONE_EVENT: Final = 101
_EVENTS: Final = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}
_SSRC: Final = 0x43434C42


def mu_law(pcm: npt.NDArray[np.int16]) -> bytes:
    """G.711 mu-law of 16-bit linear samples (the ITU-T reference encoder)."""
    sample = pcm.astype(np.int32)
    sign = np.where(sample < 0, 0x80, 0x00)
    magnitude = np.minimum(np.abs(sample), 32635) + 0x84
    exponent = np.floor(np.log2(magnitude)).astype(np.int32) - 7
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return bytes((~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8))


def speech_packets(pcm: npt.NDArray[np.int16], *, start_seq: int = 1) -> list[tuple[float, bytes]]:
    """RTP packets (time from the first, packet) of ``pcm`` as PCMU, 20 ms each (the last padded)."""
    padded = np.concatenate([pcm, np.zeros((-len(pcm)) % FRAME_SAMPLES, dtype=np.int16)])
    encoded = mu_law(padded)
    packets = []
    for index in range(len(padded) // FRAME_SAMPLES):
        payload = encoded[index * FRAME_SAMPLES : (index + 1) * FRAME_SAMPLES]
        header = _rtp(PCMU, start_seq + index, index * FRAME_SAMPLES, marker=index == 0)
        packets.append((index * 0.02, header + payload))
    return packets


def key_packets(key: str, *, duration_ms: int = 200) -> list[tuple[float, bytes]]:
    """An RFC 4733 key press: event packets every 20 ms, then the end packet three times."""
    event = _EVENTS[key]
    timestamp = 0  # every packet of one event carries the event's start time
    packets = []
    steps = max(1, duration_ms // 20)
    for step in range(1, steps + 1):
        payload = struct.pack("!BBH", event, 10, step * FRAME_SAMPLES)  # volume -10 dBm0
        packets.append(
            ((step - 1) * 0.02, _rtp(TELEPHONE_EVENT, step, timestamp, marker=step == 1) + payload)
        )
    end = struct.pack("!BBH", event, 0x80 | 10, steps * FRAME_SAMPLES)
    for repeat in range(3):
        at = (steps + repeat) * 0.02
        packets.append((at, _rtp(TELEPHONE_EVENT, steps + 1 + repeat, timestamp, marker=False) + end))
    return packets


def write_pcap(path: Path, packets: Iterable[tuple[float, bytes]]) -> Path:
    """Write RTP ``packets`` (time in seconds, RTP bytes) as an Ethernet pcap SIPp can play."""
    with path.open("wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for at, rtp in packets:
            frame = _ethernet(_ipv4(_udp(rtp)))
            seconds, micros = int(at), round((at - int(at)) * 1_000_000)
            out.write(struct.pack("<IIII", 1_700_000_000 + seconds, micros, len(frame), len(frame)))
            out.write(frame)
    return path


def _rtp(payload_type: int, seq: int, timestamp: int, *, marker: bool) -> bytes:
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | payload_type, seq & 0xFFFF, timestamp, _SSRC)


def _udp(payload: bytes) -> bytes:
    return struct.pack("!HHHH", 40000, 40000, 8 + len(payload), 0) + payload


def _ipv4(payload: bytes) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(payload),
        0,
        0,
        64,
        17,
        0,
        bytes([127, 0, 0, 1]),
        bytes([127, 0, 0, 1]),
    )
    checksum = _checksum(header)
    return header[:10] + struct.pack("!H", checksum) + header[12:] + payload


def _ethernet(payload: bytes) -> bytes:
    return b"\x00" * 6 + b"\x02" + b"\x00" * 5 + b"\x08\x00" + payload


def _checksum(data: bytes) -> int:
    total = int(sum(struct.unpack(f"!{len(data) // 2}H", data)))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF
