"""The benchmark chart: seconds against students, one panel per backend, one line per stage (matplotlib)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

CHART_STAGES = ("SPRG end to end (sum of stages)", "SPRG end to end (sum of task processes)",
                "SPRG bare SELECT -> caret (baseline)",
                "SPRG extract (pull + build)", "SPRG gate (stage)", "SPRG diff vs history (stage)",
                "SPRG publish", "SPRG save history", "STAS end to end (sum of stages)")


def draw_chart(rows: list[dict[str, Any]], path: Path) -> None:
    """rows: bench.csv's (stage, students, backend, seconds); stages outside CHART_STAGES are left out."""
    import matplotlib

    matplotlib.use("Agg")   # files only, no display
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    backends = list(dict.fromkeys(r["backend"] for r in rows if r["stage"] in CHART_STAGES))
    fig, axes = plt.subplots(1, max(1, len(backends)), figsize=(5.6 * max(1, len(backends)), 5.3), squeeze=False)
    for ax, backend in zip(axes[0], backends, strict=False):
        sel = [r for r in rows if r["backend"] == backend and r["stage"] in CHART_STAGES]
        for stage in CHART_STAGES:
            pts = sorted((int(r["students"]), float(r["seconds"])) for r in sel if r["stage"] == stage)
            if pts:
                ax.plot([n for n, _ in pts], [s for _, s in pts], marker="o", linewidth=2, label=stage)
        ax.set_title(f"{backend}: seconds by students")
        ax.set_xlabel("students")
        ax.set_ylabel("seconds")
        ax.set_ylim(bottom=0)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda n, _: f"{n / 1000:.0f}K"))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
