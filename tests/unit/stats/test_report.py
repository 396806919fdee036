"""The daily summary: a local day's KPIs and its PNG chart, read back pixel by pixel (pure)."""

from __future__ import annotations

import struct
import zlib
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from callcenter.stats.definitions import Counts, StatsConfig
from callcenter.stats.intervals import IntervalKey
from callcenter.stats.report import HEIGHT, WIDTH, chart_png, daily_report, day_bounds, report_html

PARIS = ZoneInfo("Europe/Paris")


def decode(png: bytes) -> tuple[int, int, bytes]:
    """Width, height and RGB rows of a PNG made by encode_png (filter 0 on every row)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, data, size = 8, b"", (0, 0)
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        tag, body = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", png[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(tag + body) & 0xFFFFFFFF == crc
        if tag == b"IHDR":
            size = struct.unpack(">II", body[:8])
        elif tag == b"IDAT":
            data += body
        pos += 12 + length
    raw = zlib.decompress(data)
    width, height = size
    rows = b"".join(raw[y * (width * 3 + 1) + 1 : (y + 1) * (width * 3 + 1)] for y in range(height))
    return width, height, rows


def row(hour_utc: int, minute: int, **counts: int) -> tuple[IntervalKey, Counts]:
    start = datetime(2026, 11, 23, hour_utc, minute, tzinfo=UTC)
    return IntervalKey(queue="sales", start=start), Counts(**counts)


def test_a_local_day_sums_its_intervals_by_local_hour() -> None:
    rows = [
        row(22, 45, offered=9, answered=9),  # 23:45 in Paris on the 23rd
        row(23, 0, offered=4, answered=2, missed=2, missed_closable=2, missed_closed=1),  # 00:00 on the 24th
        row(8, 0, offered=3, answered=3),  # 09:00 on the 23rd
    ]

    report = daily_report(rows, date(2026, 11, 23), PARIS)

    assert report.counts.offered == 12
    assert report.hours[23].offered == 9 and report.hours[9].offered == 3
    start, end = day_bounds(date(2026, 3, 29), PARIS)  # the clocks go forward that night
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=23)


def test_the_chart_shows_answered_and_missed_bars_where_the_calls_were() -> None:
    rows = [row(9, 0, offered=10, answered=6, missed=4), row(14, 15, offered=2, answered=2)]
    width, height, rgb = decode(chart_png(daily_report(rows, date(2026, 11, 23), UTC)))

    def colours_in_column(hour: int) -> set[tuple[int, int, int]]:
        """The colours of one hour's bar column above the x axis."""
        x = 30 + hour * ((WIDTH - 40) // 24) + 10
        return {tuple(rgb[(y * width + x) * 3 : (y * width + x) * 3 + 3]) for y in range(height - 20)}  # type: ignore[misc]

    assert (width, height) == (WIDTH, HEIGHT)
    assert {(31, 157, 85), (229, 62, 62)} <= colours_in_column(9)
    assert (31, 157, 85) in colours_in_column(14) and (229, 62, 62) not in colours_in_column(14)
    assert colours_in_column(4) == {(255, 255, 255)}


def test_the_page_names_the_kpis_and_leaves_out_what_is_not_configured() -> None:
    rows = [row(9, 0, offered=10, answered=6, missed=4, missed_closable=4, missed_closed=3)]
    report = daily_report(rows, date(2026, 11, 23), UTC)

    plain = report_html(report, StatsConfig(), chart_url="/x.png?date=2026-11-23")
    priced = report_html(
        report, StatsConfig(conversion_rate=0.5, average_value=40), chart_url="/x.png", currency="€"
    )

    for text in ("Calls", "Answered", "Missed", "Called back", "3 of 4", "Callbacks kept", "09:00"):
        assert text in plain
    assert "not configured" in plain
    assert "€80" in priced
