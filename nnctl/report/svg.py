"""Charts as inline SVG: no JavaScript, no fonts or files to fetch, colours from the page's CSS
variables (so light mode, dark mode and print each get theirs). Every drawn mark has the class
`mark`, which is what the browser tests look for."""
from __future__ import annotations

import math
from html import escape

WIDTH, HEIGHT = 560, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 14, 44
MAX_POINTS = 1000  # a scatter keeps at most this many points, so the page stays small...
LARGEST_KEPT = 100  # ...always with the largest residuals among them, and an even spread of the rest
MAX_LINE_POINTS = 400  # a line keeps at most this many


def _finite(v) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        high = low + 1.0
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def _label(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e4 or abs(v) < 1e-3:
        return f"{v:.0e}".replace("e-0", "e-").replace("e+0", "e")
    return f"{v:.4g}"


class _Axes:
    """Maps data to the plot area; linear or log10 on y (and x)."""

    def __init__(self, xs, ys, log_y=False, log_x=False, y_from_zero=False):
        self.log_x, self.log_y = log_x, log_y
        xs = [self._tx(x) for x in xs if _finite(x) and (x > 0 or not log_x)]
        ys = [self._ty(y) for y in ys if _finite(y) and (y > 0 or not log_y)]
        self.x0, self.x1 = (min(xs), max(xs)) if xs else (0.0, 1.0)
        self.y0, self.y1 = (min(ys), max(ys)) if ys else (0.0, 1.0)
        if y_from_zero and not log_y:
            self.y0 = min(self.y0, 0.0)
        for lo, hi in (("x0", "x1"), ("y0", "y1")):
            low, high = getattr(self, lo), getattr(self, hi)
            if high - low <= 1e-12 * max(abs(low), abs(high), 1e-300):
                # one value (a constant learning rate): a band around it, not around zero
                half = 0.5 if (self.log_y and lo == "y0") or low == 0 else abs(low) * 0.5
                setattr(self, lo, low - half)
                setattr(self, hi, high + half)
        pad = (self.y1 - self.y0) * 0.05
        self.y0, self.y1 = self.y0 - (pad if not y_from_zero or log_y else 0), self.y1 + pad

    def _tx(self, x):
        return math.log10(x) if self.log_x else x

    def _ty(self, y):
        return math.log10(y) if self.log_y else y

    def px(self, x) -> float:
        return LEFT + (self._tx(x) - self.x0) / (self.x1 - self.x0) * (WIDTH - LEFT - RIGHT)

    def py(self, y) -> float:
        return HEIGHT - BOTTOM - (self._ty(y) - self.y0) / (self.y1 - self.y0) * (HEIGHT - TOP - BOTTOM)

    def ok(self, x, y) -> bool:
        return _finite(x) and _finite(y) and (y > 0 or not self.log_y) and (x > 0 or not self.log_x)

    def frame(self, x_label: str, y_label: str) -> list[str]:
        out = [f'<rect class="plot" x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" '
               f'height="{HEIGHT - TOP - BOTTOM}"/>']
        for value, shown in self._ticks(self.y0, self.y1, self.log_y):
            y = self.py(value)
            out.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
            out.append(f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{shown}</text>')
        for value, shown in self._ticks(self.x0, self.x1, self.log_x):
            x = self.px(value)
            out.append(f'<text class="tick" x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">{shown}</text>')
        out.append(f'<text class="axis" x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 6}" '
                   f'text-anchor="middle">{escape(x_label)}</text>')
        out.append(f'<text class="axis" transform="rotate(-90)" x="{-(TOP + HEIGHT - BOTTOM) / 2}" y="14" '
                   f'text-anchor="middle">{escape(y_label)}</text>')
        return out

    def _ticks(self, low, high, log):
        if log:
            decades = range(math.floor(low), math.ceil(high) + 1)
            step = max(1, len(decades) // 6)
            ticks = [(10.0 ** d, _label(10.0 ** d)) for d in decades[::step] if low <= d <= high]
            if len(ticks) >= 2:
                return ticks
            # within about one power of ten, decades alone leave the axis with one label or
            # none: label round values in between, still placed on the log scale
            values = [t for t in _nice_ticks(10.0 ** low, 10.0 ** high) if t > 0 and low <= math.log10(t) <= high]
            return [(v, _label(v)) for v in values]
        return [(t, _label(t)) for t in _nice_ticks(low, high) if low <= t <= high]


def _svg(body: list[str], title: str) -> str:
    return (f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
            f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>{"".join(body)}</svg>')


def _colour(series: dict, i: int) -> int:
    return series.get("color", i) % 8


def _legend(series: list[dict]) -> str:
    """One key per series, drawn in the series' own colour and dash, as its line is."""
    items = []
    for i, s in enumerate(series):
        dash = " dashed" if s.get("dashed") else ""
        items.append(f'<span class="key"><svg width="22" height="10"><line class="s{_colour(s, i)}{dash}" x1="0" '
                     f'x2="22" y1="5" y2="5"/></svg>{escape(s["label"])}</span>')
    return f'<figcaption>{"".join(items)}</figcaption>' if items else ""


def _thin(points: list, most: int) -> list:
    """At most `most` points, evenly spread, the first and last kept: a curve over tens of
    thousands of rows (ROC, PR) or epochs looks the same and the page stays small."""
    if len(points) <= most:
        return points
    step = (len(points) - 1) / (most - 1)
    return [points[round(i * step)] for i in range(most)]


def line_chart(series: list[dict], title: str, x_label: str, y_label: str, log_y: bool = False,
               log_x: bool = False, reference: tuple | None = None, y_from_zero: bool = False) -> str:
    """series: [{label, x, y, dashed?, color?}]; a gap wherever y is not finite (or ≤ 0 on a log
    axis). `reference`: (y, label) drawn as a dotted horizontal line."""
    xs = [x for s in series for x in s["x"]]
    ys = [y for s in series for y in s["y"]] + ([reference[0]] if reference else [])
    axes = _Axes(xs, ys, log_y, log_x, y_from_zero)
    body = axes.frame(x_label, y_label)
    if reference and axes.ok(axes.x0 if not log_x else 1, reference[0]):
        y = axes.py(reference[0])
        body.append(f'<line class="reference" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        body.append(f'<text class="tick" x="{WIDTH - RIGHT - 4}" y="{y - 4:.1f}" text-anchor="end">'
                    f'{escape(reference[1])}</text>')
    for i, s in enumerate(series):
        color = _colour(s, i)
        dash = " dashed" if s.get("dashed") else ""
        runs, current = [], []
        for x, y in zip(s["x"], s["y"]):
            if axes.ok(x, y):
                current.append(f"{axes.px(x):.1f},{axes.py(y):.1f}")
            elif current:
                runs.append(current)
                current = []
        if current:
            runs.append(current)
        for points in runs:
            points = _thin(points, MAX_LINE_POINTS)
            if len(points) == 1:
                cx, cy = points[0].split(",")
                body.append(f'<circle class="mark s{color}" cx="{cx}" cy="{cy}" r="2.5"/>')
            else:
                body.append(f'<polyline class="mark s{color}{dash}" points="{" ".join(points)}"/>')
    legend = _legend(series)
    return f'<figure class="chart"><div class="ctitle">{escape(title)}</div>{_svg(body, title)}{legend}</figure>'


def sample_points(pairs: list, most: int = MAX_POINTS, largest: int = LARGEST_KEPT) -> list:
    """At most `most` of the (x, y) pairs, in their order: the `largest` farthest from y = x (the
    rows a reader must see: the worst predictions) and an even spread of the others."""
    if len(pairs) <= most:
        return pairs
    order = sorted(range(len(pairs)), key=lambda i: -abs(pairs[i][1] - pairs[i][0]))
    kept = set(order[:largest])
    rest = [i for i in range(len(pairs)) if i not in kept]
    step = len(rest) / (most - len(kept))
    kept.update(rest[int(j * step)] for j in range(most - len(kept)))
    return [pairs[i] for i in sorted(kept)]


def scatter(xs, ys, title: str, x_label: str, y_label: str, diagonal: bool = True) -> str:
    """Points, with the y = x line (a perfect prediction) when `diagonal`. Over MAX_POINTS
    points, `sample_points` keeps the largest residuals and an even spread of the rest, and the
    chart says how many it shows."""
    pairs = [(x, y) for x, y in zip(xs, ys) if _finite(x) and _finite(y)]
    caption = ""
    if len(pairs) > MAX_POINTS:
        caption = (f"<figcaption>{MAX_POINTS:,} of {len(pairs):,} shown: the {LARGEST_KEPT} largest residuals "
                   "and an even spread of the others</figcaption>")
        pairs = sample_points(pairs)
    values = [v for p in pairs for v in p]
    axes = _Axes(values, values) if diagonal else _Axes([p[0] for p in pairs], [p[1] for p in pairs])
    body = axes.frame(x_label, y_label)
    if diagonal:
        low, high = max(axes.x0, axes.y0), min(axes.x1, axes.y1)
        body.append(f'<line class="reference" x1="{axes.px(low):.1f}" y1="{axes.py(low):.1f}" '
                    f'x2="{axes.px(high):.1f}" y2="{axes.py(high):.1f}"/>')
    body += [f'<circle class="mark s0 dot" cx="{axes.px(x):.1f}" cy="{axes.py(y):.1f}" r="2.2"/>' for x, y in pairs]
    return f'<figure class="chart"><div class="ctitle">{escape(title)}</div>{_svg(body, title)}{caption}</figure>'


def histogram(values, title: str, x_label: str, bins: int = 30) -> str:
    values = [v for v in values if _finite(v)]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if high - low < 1e-12:
        low, high = low - 0.5, high + 0.5
    width = (high - low) / bins
    counts = [0] * bins
    for v in values:
        counts[min(int((v - low) / width), bins - 1)] += 1
    return counted_histogram(low, high, counts, title, x_label)


def counted_histogram(low: float, high: float, counts: list[int], title: str, x_label: str) -> str:
    """Bars of `counts` rows over equal bins from `low` to `high` (counted elsewhere: a
    histogram that metrics.json keeps, say)."""
    if high - low < 1e-12:
        low, high = low - 0.5, high + 0.5
    width = (high - low) / max(len(counts), 1)
    axes = _Axes([low, high], [0] + list(counts), y_from_zero=True)
    body = axes.frame(x_label, "rows")
    for i, n in enumerate(counts):
        if n:
            x0, x1 = axes.px(low + i * width), axes.px(low + (i + 1) * width)
            body.append(f'<rect class="mark bar" x="{x0 + 0.5:.1f}" y="{axes.py(n):.1f}" '
                        f'width="{max(x1 - x0 - 1, 0.5):.1f}" height="{axes.py(0) - axes.py(n):.1f}"/>')
    return f'<figure class="chart"><div class="ctitle">{escape(title)}</div>{_svg(body, title)}</figure>'


def strip_chart(xs, ys, title: str, x_label: str, y_label: str, mean: float, std: float,
                kept: int | None = None) -> str:
    """One dot per value at its x (a seed), the mean as a dotted line inside a shaded band of
    ± one std, and the dot at index `kept` drawn larger in the second colour."""
    # half a step of room each side: the first and last dot are not drawn on the frame
    axes = _Axes([min(xs) - 0.5, max(xs) + 0.5] if xs else [], list(ys) + [mean - std, mean + std])
    body = axes.frame(x_label, y_label)
    if _finite(mean) and _finite(std):
        top, bottom = axes.py(mean + std), axes.py(mean - std)
        body.append(f'<rect class="band" x="{LEFT}" y="{top:.1f}" width="{WIDTH - LEFT - RIGHT}" '
                    f'height="{max(bottom - top, 0.5):.1f}" fill="currentColor" fill-opacity="0.08"/>')
        y = axes.py(mean)
        body.append(f'<line class="reference" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        body.append(f'<text class="tick" x="{WIDTH - RIGHT - 4}" y="{y - 4:.1f}" text-anchor="end">'
                    f'mean ± std</text>')
    for i, (x, y) in enumerate(zip(xs, ys)):
        if axes.ok(x, y):
            big = i == kept
            body.append(f'<circle class="mark s{1 if big else 0}" cx="{axes.px(x):.1f}" cy="{axes.py(y):.1f}" '
                        f'r="{5 if big else 3.5}"><title>{escape(f"{x_label} {x}: {y:.6g}")}</title></circle>')
    return f'<figure class="chart"><div class="ctitle">{escape(title)}</div>{_svg(body, title)}</figure>'


BAR_ROW = 20  # pixels per bar of a horizontal bar chart
BAR_LEFT = 170  # room for the bars' labels


def bar_chart(labels: list[str], values: list[float], errors: list[float], title: str, x_label: str) -> str:
    """Horizontal bars, one per label, top to bottom as given, each with a ±error whisker; the
    x axis includes 0, so a bar whose whisker crosses it reads as "no different from nothing"."""
    ends = [v + s * e for v, e in zip(values, errors) if _finite(v) and _finite(e) for s in (-1, 1)]
    low, high = min(ends + [0.0]), max(ends + [0.0])
    if high - low < 1e-12:
        high = low + 1.0
    height = TOP + BAR_ROW * len(labels) + BOTTOM
    right = WIDTH - RIGHT

    def px(x):
        return BAR_LEFT + (x - low) / (high - low) * (right - BAR_LEFT)

    body = [f'<rect class="plot" x="{BAR_LEFT}" y="{TOP}" width="{right - BAR_LEFT}" height="{height - TOP - BOTTOM}"/>']
    for t in _nice_ticks(low, high):
        if low <= t <= high:
            body.append(f'<line class="grid" x1="{px(t):.1f}" x2="{px(t):.1f}" y1="{TOP}" y2="{height - BOTTOM}"/>')
            body.append(f'<text class="tick" x="{px(t):.1f}" y="{height - BOTTOM + 16}" text-anchor="middle">'
                        f'{_label(t)}</text>')
    zero = px(0.0)
    for i, (name, v, e) in enumerate(zip(labels, values, errors)):
        y = TOP + i * BAR_ROW
        shown = name if len(name) <= 24 else name[:23] + "…"
        body.append(f'<text class="tick" x="{BAR_LEFT - 6}" y="{y + BAR_ROW * 0.65:.1f}" text-anchor="end">'
                    f'{escape(shown)}</text>')
        if not _finite(v):
            continue
        x0, x1 = sorted((zero, px(v)))
        body.append(f'<rect class="mark bar" x="{x0:.1f}" y="{y + 3}" width="{max(x1 - x0, 0.5):.1f}" '
                    f'height="{BAR_ROW - 6}"><title>{escape(name)}: {_label(v)} ± {_label(e)}</title></rect>')
        if _finite(e) and e > 0:
            mid = y + BAR_ROW / 2
            body.append(f'<line class="s7" x1="{px(v - e):.1f}" x2="{px(v + e):.1f}" y1="{mid}" y2="{mid}"/>')
    body.append(f'<line class="reference" x1="{zero:.1f}" x2="{zero:.1f}" y1="{TOP}" y2="{height - BOTTOM}"/>')
    body.append(f'<text class="axis" x="{(BAR_LEFT + right) / 2}" y="{height - 6}" text-anchor="middle">'
                f'{escape(x_label)}</text>')
    svg = (f'<svg viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(title)}" '
           f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>{"".join(body)}</svg>')
    return f'<figure class="chart"><div class="ctitle">{escape(title)}</div>{svg}</figure>'
