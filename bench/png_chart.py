"""A small PNG line chart (seconds against students, one panel per backend) with the standard library
only: the venv has no plotting library (matplotlib would replace this file)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

# 5x7 glyphs, one 5-bit row per entry (upper case; text is drawn upper-cased).
FONT = {
    "A": (14, 17, 17, 31, 17, 17, 17), "B": (30, 17, 17, 30, 17, 17, 30), "C": (14, 17, 16, 16, 16, 17, 14),
    "D": (30, 17, 17, 17, 17, 17, 30), "E": (31, 16, 16, 30, 16, 16, 31), "F": (31, 16, 16, 30, 16, 16, 16),
    "G": (14, 17, 16, 23, 17, 17, 15), "H": (17, 17, 17, 31, 17, 17, 17), "I": (14, 4, 4, 4, 4, 4, 14),
    "J": (7, 2, 2, 2, 2, 18, 12), "K": (17, 18, 20, 24, 20, 18, 17), "L": (16, 16, 16, 16, 16, 16, 31),
    "M": (17, 27, 21, 21, 17, 17, 17), "N": (17, 17, 25, 21, 19, 17, 17), "O": (14, 17, 17, 17, 17, 17, 14),
    "P": (30, 17, 17, 30, 16, 16, 16), "Q": (14, 17, 17, 17, 21, 18, 13), "R": (30, 17, 17, 30, 20, 18, 17),
    "S": (15, 16, 16, 14, 1, 1, 30), "T": (31, 4, 4, 4, 4, 4, 4), "U": (17, 17, 17, 17, 17, 17, 14),
    "V": (17, 17, 17, 17, 17, 10, 4), "W": (17, 17, 17, 21, 21, 21, 10), "X": (17, 17, 10, 4, 10, 17, 17),
    "Y": (17, 17, 10, 4, 4, 4, 4), "Z": (31, 1, 2, 4, 8, 16, 31),
    "0": (14, 17, 19, 21, 25, 17, 14), "1": (4, 12, 4, 4, 4, 4, 14), "2": (14, 17, 1, 2, 4, 8, 31),
    "3": (31, 2, 4, 2, 1, 17, 14), "4": (2, 6, 10, 18, 31, 2, 2), "5": (31, 16, 30, 1, 1, 17, 14),
    "6": (6, 8, 16, 30, 17, 17, 14), "7": (31, 1, 2, 4, 8, 8, 8), "8": (14, 17, 17, 14, 17, 17, 14),
    "9": (14, 17, 17, 15, 1, 2, 12), " ": (0,) * 7, ".": (0, 0, 0, 0, 0, 12, 12), ",": (0, 0, 0, 0, 12, 4, 8),
    "-": (0, 0, 0, 31, 0, 0, 0), "(": (2, 4, 8, 8, 8, 4, 2), ")": (8, 4, 2, 2, 2, 4, 8), ":": (0, 12, 12, 0, 12, 12, 0),
    "/": (1, 1, 2, 4, 8, 16, 16), "+": (0, 4, 4, 31, 4, 4, 0), "_": (0, 0, 0, 0, 0, 0, 31), ">": (8, 4, 2, 1, 2, 4, 8),
    "<": (2, 4, 8, 16, 8, 4, 2), "=": (0, 0, 31, 0, 31, 0, 0), "'": (4, 4, 8, 0, 0, 0, 0),
}
COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]
CHART_STAGES = ("SPRG end to end (sum of stages)", "SPRG bare SELECT -> caret (baseline)",
                "SPRG extract (pull + build)", "SPRG gate (stage)", "SPRG diff vs history (stage)",
                "SPRG publish", "SPRG save history", "STAS end to end (sum of stages)")


class Canvas:
    def __init__(self, w: int, h: int):
        self.w, self.h = w, h
        self.px = bytearray(b"\xff" * (w * h * 3))

    def dot(self, x: int, y: int, c: tuple[int, int, int]) -> None:
        if 0 <= x < self.w and 0 <= y < self.h:
            i = (y * self.w + x) * 3
            self.px[i:i + 3] = bytes(c)

    def line(self, x0: int, y0: int, x1: int, y1: int, c: tuple[int, int, int], width: int = 1) -> None:
        steps = max(abs(x1 - x0), abs(y1 - y0), 1)
        for s in range(steps + 1):
            x, y = round(x0 + (x1 - x0) * s / steps), round(y0 + (y1 - y0) * s / steps)
            for dx in range(width):
                for dy in range(width):
                    self.dot(x + dx - width // 2, y + dy - width // 2, c)

    def text(self, x: int, y: int, s: str, c: tuple[int, int, int] = (0, 0, 0)) -> None:
        for k, ch in enumerate(s.upper()):
            for row, bits in enumerate(FONT.get(ch, FONT[" "])):
                for col in range(5):
                    if bits >> (4 - col) & 1:
                        self.dot(x + k * 6 + col, y + row, c)

    def save(self, path: Path) -> None:
        raw = b"".join(b"\x00" + bytes(self.px[y * self.w * 3:(y + 1) * self.w * 3]) for y in range(self.h))

        def chunk(tag: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
        png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", self.w, self.h, 8, 2, 0, 0, 0))
               + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
        path.write_bytes(png)


def draw_chart(rows: list[dict[str, Any]], path: Path) -> None:
    backends = list(dict.fromkeys(r["backend"] for r in rows if r["stage"] in CHART_STAGES))
    pw, ph, left, top, bottom = 560, 360, 60, 40, 40
    cv = Canvas(pw * len(backends), ph + 170)
    for b, backend in enumerate(backends):
        ox = b * pw
        sel = [r for r in rows if r["backend"] == backend and r["stage"] in CHART_STAGES]
        if not sel:
            continue
        xmax = max(r["students"] for r in sel)
        ymax = max(float(r["seconds"]) for r in sel) * 1.1 or 1.0
        x0, y0, x1, y1 = ox + left, top + ph - bottom - top, ox + pw - 20, top
        cv.text(ox + left, 12, f"{backend}: seconds by students")
        cv.line(x0, y0, x1, y0, (0, 0, 0))
        cv.line(x0, y0, x0, y1, (0, 0, 0))
        for k in range(5):
            v = ymax * k / 4
            y = round(y0 - (y0 - y1) * k / 4)
            cv.line(x0 - 3, y, x0, y, (0, 0, 0))
            cv.text(ox + 4, y - 3, f"{v:.0f}")
        for n in sorted({r["students"] for r in sel}):
            x = round(x0 + (x1 - x0) * n / xmax)
            cv.line(x, y0, x, y0 + 3, (0, 0, 0))
            cv.text(x - 15, y0 + 8, f"{n // 1000}K")
        for s, stage in enumerate(CHART_STAGES):
            pts = sorted((r["students"], float(r["seconds"])) for r in sel if r["stage"] == stage)
            colour = COLOURS[s % len(COLOURS)]
            xy = [(round(x0 + (x1 - x0) * n / xmax), round(y0 - (y0 - y1) * sec / ymax)) for n, sec in pts]
            for (ax, ay), (bx, by) in zip(xy, xy[1:], strict=False):
                cv.line(ax, ay, bx, by, colour, 2)
            for x, y in xy:
                cv.line(x - 2, y, x + 2, y, colour, 3)
            if pts:
                cv.line(ox + left, ph + 12 + s * 12 + 3, ox + left + 14, ph + 12 + s * 12 + 3, colour, 3)
                cv.text(ox + left + 20, ph + 12 + s * 12, stage)
    cv.save(path)
