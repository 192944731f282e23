#!/usr/bin/env python3
"""Draws docs/throughput.svg from the chart table in BENCHMARKS.md (between <!-- chart --> and
<!-- /chart -->): one bar per tool, throughput in MB/s on the 1 GB data set.

    python3 scripts/chart.py        # after updating the table from scripts/bench.sh's output

Plain SVG, no dependencies: the figures come from the table, nothing is measured here.
"""
import pathlib
import re
from xml.sax.saxutils import escape

ROOT = pathlib.Path(__file__).resolve().parent.parent
text = (ROOT / "BENCHMARKS.md").read_text()
table = text.split("<!-- chart -->")[1].split("<!-- /chart -->")[0]
size = int(re.search(r"data set bytes: ([0-9,]+)", table).group(1).replace(",", ""))
rows = []
for line in table.splitlines():
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cells) >= 3 and re.fullmatch(r"[0-9.]+", cells[1]):
        rows.append((cells[0], float(cells[1]), cells[2]))

width, left, right, bar, gap, top = 760, 190, 150, 26, 12, 54
height = top + len(rows) * (bar + gap) + 40
best = max(size / s / 1e6 for _, s, _ in rows)
scale = (width - left - right) / best
out = [
    f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
    f'font-family="sans-serif" font-size="13">',
    f'<rect width="{width}" height="{height}" fill="white"/>',
    f'<text x="{left}" y="24" font-size="16" font-weight="bold">Throughput on a 1 GB file '
    f"(22 M rows, 2 M customers), 2 cores</text>",
    f'<text x="{left}" y="42" fill="#555">MB/s, higher is better; from BENCHMARKS.md</text>',
]
for i, (name, seconds, source) in enumerate(rows):
    y = top + i * (bar + gap)
    rate = size / seconds / 1e6
    colour = "#d9480f" if name.startswith("custagg") else "#868e96"
    out.append(f'<text x="{left - 8}" y="{y + bar * 0.68}" text-anchor="end">{escape(name)}</text>')
    out.append(f'<rect x="{left}" y="{y}" width="{max(rate * scale, 1):.1f}" height="{bar}" fill="{colour}"/>')
    out.append(
        f'<text x="{left + max(rate * scale, 1) + 6:.1f}" y="{y + bar * 0.68}">'
        f"{rate:,.0f} MB/s ({seconds:g} s){' *' if 'another run' in source else ''}</text>"
    )
if any("another run" in source for _, _, source in rows):
    out.append(
        f'<text x="{left}" y="{height - 12}" fill="#555">* measured in another script run '
        f"(its source is in BENCHMARKS.md's table)</text>"
    )
out.append("</svg>")
(ROOT / "docs" / "throughput.svg").write_text("\n".join(out) + "\n")
print(f"wrote docs/throughput.svg ({len(rows)} bars)")
