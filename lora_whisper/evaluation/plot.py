"""report.png: error per language (and the macro average), one bar per system, raw and
clipped side by side."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure


def plot_report(report: dict, path: str | Path) -> Path:
    systems = [report["system"]] + ([report["compare"]] if "compare" in report else [])
    langs = list(report["system"]["languages"])
    groups = langs + ["macro"]
    # matplotlib's object API, not pyplot: files only, so no backend to select (no display on
    # servers) and no global figure to close.
    fig = Figure(figsize=(max(6.0, 1.1 * len(groups) * len(systems) + 2), 4.2))
    axes = fig.subplots(1, 2, sharey=False)
    width = 0.8 / len(systems)
    x = np.arange(len(groups))
    for ax, key, title in ((axes[0], "error", "raw"), (axes[1], "clipped", "clipped per utterance")):
        for i, s in enumerate(systems):
            vals = [s["languages"][g][key] if g in s["languages"] else np.nan for g in langs]
            vals.append(s["macro"][key])
            bars = ax.bar(x + (i - (len(systems) - 1) / 2) * width, vals, width, label=s["name"])
            ax.bar_label(bars, fmt="%.0f", fontsize=7, padding=1)
        metrics = {report["system"]["languages"][g]["metric"] for g in langs}
        ax.set_title(f"{'/'.join(sorted(metrics))} % ({title})")
        ax.set_xticks(x, groups)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return Path(path)
