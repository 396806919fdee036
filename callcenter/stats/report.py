"""The daily summary a small business owner reads: KPIs of one local day, and its hourly chart as PNG (pure).

The figures are the dictionary's (``docs/metrics.md``), summed over the day's interval rows. The chart
is drawn pixel by pixel and encoded as PNG with ``zlib`` alone: no plotting library, nothing fetched.
"""

from __future__ import annotations

import html
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Final

from callcenter.stats.definitions import Counts, StatsConfig, figures, total
from callcenter.stats.intervals import IntervalKey

WIDTH: Final = 720
HEIGHT: Final = 240
_BG: Final = (255, 255, 255)
_AXIS: Final = (120, 120, 120)
_ANSWERED: Final = (31, 157, 85)
_MISSED: Final = (229, 62, 62)


@dataclass(frozen=True, kw_only=True, slots=True)
class DailyReport:
    """One local day: the counts of the whole day and of each local hour (0-23)."""

    day: date
    zone: tzinfo
    counts: Counts
    hours: tuple[Counts, ...]


def day_bounds(day: date, zone: tzinfo) -> tuple[datetime, datetime]:
    """The local day ``[midnight, next midnight)`` as aware times (23 or 25 hours across DST changes)."""
    start = datetime.combine(day, time(0), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    return start, end


def daily_report(rows: Iterable[tuple[IntervalKey, Counts]], day: date, zone: tzinfo) -> DailyReport:
    """Sum the interval rows of ``day`` (all queues, calls without a queue included) per local hour."""
    start, end = day_bounds(day, zone)
    hours = [Counts() for _ in range(24)]
    for key, counts in rows:
        if start <= key.start < end:
            hour = key.start.astimezone(zone).hour
            hours[hour] = hours[hour] + counts
    return DailyReport(day=day, zone=zone, counts=total(hours), hours=tuple(hours))


def chart_png(report: DailyReport) -> bytes:
    """Calls per local hour: answered (green) under missed (red), on a white 720x240 image."""
    pixels = bytearray(bytes(_BG) * (WIDTH * HEIGHT))

    def fill(x0: int, y0: int, x1: int, y1: int, colour: tuple[int, int, int]) -> None:
        row = bytes(colour) * max(0, x1 - x0)
        for y in range(max(0, y0), min(HEIGHT, y1)):
            offset = (y * WIDTH + x0) * 3
            pixels[offset : offset + len(row)] = row

    left, bottom, top = 30, HEIGHT - 20, 10
    most = max((h.offered for h in report.hours), default=0) or 1
    scale = (bottom - top) / most
    slot = (WIDTH - left - 10) // 24
    for hour, counts in enumerate(report.hours):
        x0 = left + hour * slot + 2
        x1 = x0 + slot - 4
        answered_h = round(counts.answered * scale)
        missed_h = round(counts.missed * scale)
        fill(x0, bottom - answered_h, x1, bottom, _ANSWERED)
        fill(x0, bottom - answered_h - missed_h, x1, bottom - answered_h, _MISSED)
        if hour % 3 == 0:
            fill(x0, bottom, x0 + 1, bottom + 6, _AXIS)
    fill(left, top, left + 1, bottom + 1, _AXIS)
    fill(left, bottom, WIDTH - 10, bottom + 1, _AXIS)
    return encode_png(WIDTH, HEIGHT, bytes(pixels))


def encode_png(width: int, height: int, rgb: bytes) -> bytes:
    """A truecolour 8-bit PNG of ``rgb`` (rows top to bottom, 3 bytes a pixel)."""
    stride = width * 3
    raw = b"".join(b"\x00" + rgb[y * stride : (y + 1) * stride] for y in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def _kpi(label: str, value: str, note: str = "") -> str:
    extra = f"<small>{html.escape(note)}</small>" if note else ""
    return f"<div class='kpi'><h2>{html.escape(label)}</h2><output>{html.escape(value)}</output>{extra}</div>"


def report_html(report: DailyReport, config: StatsConfig, *, chart_url: str, currency: str = "") -> str:
    """The daily summary page: calls, answered, missed, closed, callbacks kept, revenue at risk."""
    f = figures(report.counts, config)

    def pct(value: float | int | None) -> str:
        return "–" if value is None else f"{round(float(value) * 100)}%"

    revenue = f["revenue_at_risk"]
    kpis = [
        _kpi("Calls", str(f["calls_offered"])),
        _kpi("Answered", str(f["calls_answered"]), f"service level {pct(f['service_level'])}"),
        _kpi("Missed", str(f["calls_missed"]), f"{f['calls_short_abandoned']} hung up within seconds"),
        _kpi(
            "Called back",
            f"{f['missed_closed']} of {f['missed_closable']}",
            f"{pct(f['missed_closure_rate'])} of missed callers reached in time",
        ),
        _kpi("Callbacks kept", "–", "arrives with callbacks (issues 6/7)"),
        _kpi(
            "Revenue at risk",
            "not configured" if revenue is None else f"{currency}{revenue:,.0f}",
            "missed calls × conversion rate × average sale",
        ),
    ]
    rows = "".join(
        f"<tr><td>{hour:02d}:00</td><td>{c.offered}</td><td>{c.answered}</td><td>{c.missed}</td></tr>"
        for hour, c in enumerate(report.hours)
        if c.offered
    )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>Daily summary {report.day.isoformat()}</title>"
        "<link rel='stylesheet' href='/static/wallboard.css'></head><body class='report'><main>"
        f"<h1>Daily summary, {report.day.strftime('%A %d %B %Y')}</h1>"
        f"<section class='kpis'>{''.join(kpis)}</section>"
        f"<figure><img src='{html.escape(chart_url, quote=True)}' width='{WIDTH}' height='{HEIGHT}' "
        "alt='Calls per hour: answered in green, missed in red'>"
        "<figcaption>Calls per hour: answered (green), missed (red)</figcaption></figure>"
        "<table><thead><tr><th>Hour</th><th>Calls</th><th>Answered</th><th>Missed</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
        "<p class='hint'>Every figure is defined in docs/metrics.md.</p>"
        "</main></body></html>"
    )
