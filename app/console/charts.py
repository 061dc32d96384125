"""The dashboard's charts, drawn on the server as inline SVG: no script, no font file, no CDN; they
scale with the page (viewBox) from 360 px up and read in WeChat's browser."""

from markupsafe import Markup, escape

RED, GREY, GREEN, BLUE = "#c62828", "#9e9e9e", "#2e7d32", "#1565c0"
# Drawn narrow and scaled up: on a 360 px phone the words stay near their size (about 13 px), on
# the desktop the chart grows to the CSS max-width.
WIDTH, HEIGHT = 420, 230
LEFT, RIGHT, TOP, BOTTOM = 46, 6, 36, 30  # margins: axis labels, legend, month names


def _svg(title: str, body: list[str], height: int = HEIGHT) -> Markup:
    label = escape(title)
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{label}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{label}</title>' + "".join(body) + "</svg>")


def _text(x: float, y: float, text, *, size: int = 14, anchor: str = "middle", fill: str = "#333") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}">'
            f"{escape(text)}</text>")


def _axis(top: float, bottom: float, ticks: list[tuple[float, str]]) -> list[str]:
    """Horizontal grid lines at the given fractions of the plot's height, labelled on the left."""
    parts = []
    for fraction, label in ticks:
        y = bottom - (bottom - top) * fraction
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e0e0e0"/>')
        parts.append(_text(LEFT - 6, y + 5, label, size=13, anchor="end", fill="#666"))
    return parts


def _legend(items: list[tuple[str, str]]) -> list[str]:
    parts, x = [], LEFT
    for colour, label in items:
        parts.append(f'<rect x="{x}" y="10" width="14" height="14" fill="{colour}"/>')
        parts.append(_text(x + 20, 22, label, size=14, anchor="start"))
        x += 30 + 15 * len(label)
    return parts


def attendance_chart(months) -> Markup:
    """Attendance rate by month (Month.rate; a month without activities has no bar)."""
    top, bottom = TOP, HEIGHT - BOTTOM
    band = (WIDTH - LEFT - RIGHT) / max(len(months), 1)
    parts = _axis(top, bottom, [(0, "0%"), (0.5, "50%"), (1, "100%")]) + _legend([(RED, "出勤率")])
    for i, month in enumerate(months):
        x = LEFT + band * i
        parts.append(_text(x + band / 2, HEIGHT - 10, month.label, size=12))
        if month.rate is None:
            parts.append(_text(x + band / 2, bottom - 4, "—", size=12, fill=GREY))
            continue
        height = (bottom - top) * min(month.rate, 1)
        parts.append(f'<rect x="{x + band * 0.18:.1f}" y="{bottom - height:.1f}" width="{band * 0.64:.1f}" '
                     f'height="{height:.1f}" fill="{RED}"><title>{escape(month.label)}：{month.present}/'
                     f'{month.expected}</title></rect>')
        parts.append(_text(x + band / 2, bottom - height - 4, f"{month.rate:.0%}", size=10))
    return _svg("近12个月出勤率", parts)


def wishes_chart(months) -> Markup:
    """Wishes posted and completed by month, side by side."""
    top, bottom = TOP, HEIGHT - BOTTOM
    peak = max([m.wishes_posted for m in months] + [m.wishes_done for m in months] + [1])
    band = (WIDTH - LEFT - RIGHT) / max(len(months), 1)
    ticks = [(0, "0"), (1, str(peak))] + ([(0.5, str(peak // 2))] if peak % 2 == 0 else [])
    parts = _axis(top, bottom, ticks)
    parts += _legend([(BLUE, "新发布"), (GREEN, "已完成")])
    for i, month in enumerate(months):
        x = LEFT + band * i
        parts.append(_text(x + band / 2, HEIGHT - 10, month.label, size=12))
        for j, (value, colour) in enumerate(((month.wishes_posted, BLUE), (month.wishes_done, GREEN))):
            height = (bottom - top) * value / peak
            parts.append(f'<rect x="{x + band * (0.14 + 0.36 * j):.1f}" y="{bottom - height:.1f}" '
                         f'width="{band * 0.36:.1f}" height="{height:.1f}" fill="{colour}">'
                         f'<title>{escape(month.label)}：{value}</title></rect>')
    return _svg("近12个月心愿", parts)


def quota_chart(quota) -> Markup:
    """The year's quota of a kind: the share of its members who reached each count, and both."""
    rows = [("组织生活达标", quota.org_life_done), ("志愿服务达标", quota.volunteer_done), ("全部达标", quota.on_track)]
    height, label_width = 20 + 46 * len(rows), 110
    span = WIDTH - label_width - RIGHT - 64
    parts = []
    for i, (label, done) in enumerate(rows):
        y = 10 + 46 * i
        share = done / quota.members if quota.members else 0
        parts.append(_text(label_width - 8, y + 20, label, size=15, anchor="end"))
        parts.append(f'<rect x="{label_width}" y="{y}" width="{span}" height="28" fill="#eeeeee"/>')
        parts.append(f'<rect x="{label_width}" y="{y}" width="{span * share:.1f}" height="28" fill="{GREEN}"/>')
        parts.append(_text(label_width + span + 6, y + 20, f"{done}/{quota.members}", size=15, anchor="start"))
    return _svg(f"{quota.kind}年度完成情况", parts, height)
