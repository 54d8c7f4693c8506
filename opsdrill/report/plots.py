"""Plots as PNG bytes (matplotlib, headless), embedded into the HTML so it stays one file."""

from __future__ import annotations

import base64
import io
from typing import Any

from opsdrill.drill.incident import Incident

__all__ = ["drill_plot", "load_percentile_plot", "png_data_uri"]

OK_COLOR, FAIL_COLOR, FAULT_COLOR = "#2b7bba", "#d62728", "#f4a582"


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def drill_plot(incident: Incident) -> bytes | None:
    """Probe latency over the drill, failures in red, the fault window shaded."""
    samples = incident.samples
    if not samples:
        return None
    import matplotlib  # here: half a second of imports, only when a plot is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    events = {e["name"]: e["t"] for e in reversed(incident.timeline)}
    fig, ax = plt.subplots(figsize=(8, 2.6), dpi=100)
    t = [s[0] for s in samples]
    ms = [s[3] * 1000 for s in samples]
    ok = [bool(s[1]) for s in samples]
    start = events.get("injecting", events.get("injected"))
    if start is not None:
        end = events.get("reverted", t[-1])
        ax.axvspan(start, end, color=FAULT_COLOR, alpha=0.35, label="fault active")
    ax.plot(t, ms, color=OK_COLOR, linewidth=1, label="probe latency")
    ax.scatter([x for x, g in zip(t, ok, strict=True) if not g],
               [y for y, g in zip(ms, ok, strict=True) if not g],
               color=FAIL_COLOR, s=12, zorder=3, label="failed probe")  # fmt: skip
    for name, style in (("detected", "--"), ("recovered", ":")):
        if name in events:
            ax.axvline(events[name], color="black", linestyle=style, linewidth=1, label=name)
    ax.set_xlabel("seconds since drill start")
    ax.set_ylabel("latency (ms)")
    ax.set_title(f"{incident.drill}: availability probe", fontsize=10)
    ax.legend(fontsize=7, loc="upper right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def load_percentile_plot(load: dict[str, Any], incident: Incident | None = None) -> bytes | None:
    """Latency percentiles (and failures/s) of a load that ran through a drill, per second,
    with the fault window shaded: shows how long the outage hurt real traffic."""
    history = load.get("history") or []
    if not history:
        return None
    import matplotlib  # here: half a second of imports, only when a plot is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    events = {e["name"]: e["t"] for e in reversed(incident.timeline if incident else [])}
    start, end = load.get("fault_window") or [None, None]
    start = events.get("injecting", events.get("injected", start))
    end = events.get("reverted", end)
    fig, ax = plt.subplots(figsize=(8, 2.8), dpi=100)
    t = [row[0] for row in history]
    if start is not None:
        ax.axvspan(start, end if end is not None else t[-1], color=FAULT_COLOR, alpha=0.35,
                   label="fault active")  # fmt: skip
    for col, name, style in ((3, "p50", ":"), (4, "p95", "-"), (5, "p99", "--")):
        ax.plot(t, [row[col] for row in history], color=OK_COLOR, linestyle=style,
                linewidth=1.2, label=name)  # fmt: skip
    ax.set_xlabel("seconds since drill start")
    ax.set_ylabel("latency (ms)")
    fails = ax.twinx()
    fails.bar(t, [row[2] for row in history], width=0.8, color=FAIL_COLOR, alpha=0.5,
              label="failed requests/s")  # fmt: skip
    fails.set_ylabel("failed/s")
    rate = load.get("load", {}).get("target_rate", "?")
    ax.set_title(f"{load.get('drill', '')}: load during the drill ({rate} requests/s)",
                 fontsize=10)  # fmt: skip
    handles = ax.get_legend_handles_labels()
    extra = fails.get_legend_handles_labels()
    ax.legend(handles[0] + extra[0], handles[1] + extra[1], fontsize=7, loc="upper right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
