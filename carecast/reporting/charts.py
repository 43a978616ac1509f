"""A report's charts, drawn on the server as SVG with matplotlib (its SVG backend: no JavaScript, no CDN).

Each function returns an `<svg>` element to put in a page as it is. Figures are made without
pyplot, so no figure is shared between requests (only the two SVG settings below, set once).
"""

from __future__ import annotations

import io
import re

import matplotlib
from matplotlib.figure import Figure

# Text stays text (smaller, selectable, read by screen readers); ids are the same for the same chart.
matplotlib.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "carecast"})

INK, MUTED = "#123a8c", "#8a96ad"
CHANNEL_COLOURS = {"email": "#123a8c", "sms": "#2e7d32", "voice": "#f5a623"}
_PROLOGUE = re.compile(r"^.*?(?=<svg)", re.DOTALL)  # the XML declaration and DOCTYPE before the element


def _svg(figure: Figure, title: str) -> str:
    figure.suptitle(title, x=0.01, ha="left", fontsize=11, fontweight="bold")
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    return _PROLOGUE.sub("", buffer.getvalue(), count=1)


def funnel(stages: list[tuple[str, int]]) -> str:
    """Horizontal bars, first stage on top: how many got through each stage."""
    figure = Figure(figsize=(7, 0.45 * len(stages) + 0.8))
    axes = figure.subplots()
    names, counts = [name for name, _ in stages][::-1], [count for _, count in stages][::-1]
    bars = axes.barh(names, counts, color=INK)
    axes.bar_label(bars, labels=[f"{c:,}" for c in counts], padding=3, fontsize=9)
    axes.spines[["top", "right"]].set_visible(False)
    axes.set_xlim(0, max(counts + [1]) * 1.15)
    return _svg(figure, "Funnel")


def sends_per_day(days: list[str], by_channel: dict[str, list[int]]) -> str:
    """Stacked bars a day, a colour a channel."""
    figure = Figure(figsize=(7, 2.6))
    axes = figure.subplots()
    bottom = [0] * len(days)
    for channel, counts in sorted(by_channel.items()):
        axes.bar(days, counts, bottom=bottom, label=channel, color=CHANNEL_COLOURS.get(channel, MUTED))
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    axes.spines[["top", "right"]].set_visible(False)
    axes.tick_params(axis="x", labelrotation=60, labelsize=8)
    if by_channel:
        axes.legend(frameon=False, fontsize=8)
    else:
        axes.text(0.5, 0.5, "nothing sent yet", transform=axes.transAxes, ha="center", color=MUTED)
    return _svg(figure, "Messages sent a day, by channel")


def lift(points: list[tuple[str, float, float, float]]) -> str:
    """Each version's lift over its holdout (a dot) and its 95 % interval (a line), against zero."""
    figure = Figure(figsize=(7, 0.5 * max(len(points), 1) + 1))
    axes = figure.subplots()
    axes.axvline(0, color=MUTED, linewidth=1)
    for row, (_, difference, low, high) in enumerate(points):
        axes.plot([low * 100, high * 100], [row, row], color=INK, linewidth=3, solid_capstyle="butt")
        axes.plot([difference * 100], [row], "o", color="#f5a623", markersize=8)
    axes.set_yticks(range(len(points)), [label for label, *_ in points])
    axes.set_xlabel("treated minus holdout conversion, percentage points (95 % interval)", fontsize=8)
    axes.spines[["top", "right"]].set_visible(False)
    return _svg(figure, "Lift over the holdout")
