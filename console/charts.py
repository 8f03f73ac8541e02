"""Small server-rendered SVG charts: numbers in, coordinates out (the template draws)."""

from __future__ import annotations

from dataclasses import dataclass

WIDTH, HEIGHT, PAD = 600, 140, 4


@dataclass
class BarChart:
    bars: list[dict[str, float]]
    peak: float


@dataclass
class LineChart:
    lines: list[dict[str, object]]
    peak: float


def bars(values: list[int], highlight: list[int] | None = None) -> BarChart:
    peak = max(values, default=0) or 1
    step = WIDTH / max(len(values), 1)
    out = []
    for i, value in enumerate(values):
        h = (HEIGHT - 2 * PAD) * value / peak
        red = (HEIGHT - 2 * PAD) * (highlight[i] if highlight else 0) / peak
        out.append(
            {
                "x": round(i * step + 1, 1),
                "w": round(step - 2, 1),
                "y": round(HEIGHT - PAD - h, 1),
                "h": round(h, 1),
                "ry": round(HEIGHT - PAD - red, 1),
                "rh": round(red, 1),
                "value": value,
            }
        )
    return BarChart(out, peak)


def lines(series: dict[str, list[float | None]]) -> LineChart:
    values = [v for s in series.values() for v in s if v is not None]
    peak = max(values, default=0) or 1
    out = []
    for name, points in series.items():
        step = WIDTH / max(len(points) - 1, 1)
        dots = [
            (round(i * step, 1), round(HEIGHT - PAD - (HEIGHT - 2 * PAD) * v / peak, 1))
            for i, v in enumerate(points)
            if v is not None
        ]
        # A line needs two points; the dots show a single bucket's value too.
        out.append({"name": name, "points": " ".join(f"{x},{y}" for x, y in dots), "dots": dots})
    return LineChart(out, peak)
