"""The operator's live chart as a figure: estimates and lab samples on the left axis (the shared y-range rules
of ``formatting``), validity drawn as the trust card words it, one right axis per process variable, flags."""

from __future__ import annotations

from typing import Any

from .. import selectors as sel
from ..formatting import d3_format, validity_style, value_axis
from .common import PALETTE, base_layout, empty_figure


def _estimate_line(trace: sel.Trace, colour: str, *, shadow: bool) -> dict[str, Any]:
    """An estimate's line: solid and wide, or dashed for a shadow deployment's (not the estimate)."""
    line = {"width": 2, "dash": "dash", "color": colour} if shadow else {"width": 3, "color": colour}
    note = " (not the estimate)" if shadow else ""
    return {
        "type": "scatter",
        "mode": "lines",
        "name": trace.name,
        "x": trace.times,
        "y": trace.values,
        "line": line,
        "hovertemplate": f"%{{y:{d3_format(trace.values)}}} {trace.unit}<extra>{trace.name}{note}</extra>",
    }


def validity_markers(trace: sel.Trace) -> list[dict[str, Any]]:
    """Validity drawn as the trust card says it (``formatting.validity_style``): a marker on every estimate
    whose inputs were outside the training envelope, and the latest estimate marked with its own validity."""
    markers = []
    times = trace.times
    outside = validity_style("out_of_range")
    points = [i for i, v in enumerate(trace.validity) if v == outside.code]
    if points:
        markers.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": f"{trace.name}: {outside.legend}",
                "x": [times[i] for i in points],
                "y": [trace.values[i] for i in points],
                "marker": {"symbol": outside.symbol, "size": 9, "color": outside.colour},
                "hovertemplate": f"{outside.legend}<extra></extra>",
            }
        )
    if len(trace):
        latest = validity_style(trace.validity[-1] if len(trace.validity) else None)
        markers.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": f"latest: {latest.legend}",
                "x": [times[-1]],
                "y": [trace.values[-1]],
                "marker": {"symbol": latest.symbol, "size": 14, "color": latest.colour, "line": {"width": 2}},
                "hovertemplate": f"latest estimate: {latest.legend}<extra></extra>",
            }
        )
    return markers


def chart_figure(chart: sel.LiveChart, flags: list | None = None) -> dict[str, Any]:
    """Estimates and lab samples on the left axis, each process variable on its own right axis, flagged
    points as dashed red lines."""
    flags = flags or []
    data: list[dict[str, Any]] = []
    estimate_unit = next((t.unit for t in chart.estimates if t.unit), "")
    estimate_title = ", ".join(dict.fromkeys(t.series.observed_property for t in chart.estimates)) or "estimate"
    colour = 0
    for trace in chart.estimates:
        data.append(
            {
                **_estimate_line(trace, PALETTE[colour % len(PALETTE)], shadow=False),
                "customdata": [
                    f"predictions|{trace.series.observed_property}|{trace.series.model_id}|{trace.series.version}"
                ]
                * len(trace),
            }
        )
        data.extend(validity_markers(trace))
        colour += 1
    for trace in chart.shadows:  # challengers (modelers only): dashed, never the estimate
        data.append(_estimate_line(trace, PALETTE[colour % len(PALETTE)], shadow=True))
        colour += 1
    for trace in chart.lab:
        data.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": trace.name,
                "x": trace.times,
                "y": trace.values,
                "marker": {
                    "symbol": "diamond",
                    "size": 13,
                    "color": "#000000",
                    "line": {"color": "#ffffff", "width": 1.5},
                },
                "customdata": [f"lab|{trace.series.observed_property}||"] * len(trace),
                "hovertemplate": f"lab %{{y:{d3_format(trace.values)}}} {trace.unit}<extra></extra>",
            }
        )
    extra = len(chart.process)
    right_edge = 1.0 - 0.07 * max(0, extra - 1)
    layout = base_layout(
        xaxis={
            "domain": [0, right_edge],
            "title": {"text": "time (UTC)", "standoff": 8},
            "gridcolor": "#e5e8eb",
            "automargin": True,
        },
        yaxis=value_axis(
            [v for t in (*chart.estimates, *chart.shadows, *chart.lab) for v in t.values],
            title=f"{estimate_title} [{estimate_unit}]" if estimate_unit else estimate_title,
        ),
        uirevision=str(chart.group),
        height=600,
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0, "font": {"size": 14}},
        margin={"l": 10, "r": 10, "t": 20, "b": 10},
        shapes=[
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": sel.plot_time(f.time),
                "x1": sel.plot_time(f.time),
                "y0": 0,
                "y1": 1,
                "line": {"color": "#b03a2e", "width": 2, "dash": "dash"},
            }
            for f in flags
        ],
        annotations=[
            {
                "x": sel.plot_time(f.time),
                "y": 1,
                "xref": "x",
                "yref": "paper",
                "text": f"⚑ {f.get_type_display()}",
                "showarrow": False,
                "yanchor": "bottom",
                "font": {"color": "#b03a2e", "size": 13},
            }
            for f in flags
        ],
    )
    for index, trace in enumerate(chart.process):
        axis = f"y{index + 2}"
        colour_code = PALETTE[(colour + index) % len(PALETTE)]
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": sel.with_unit(trace.name, {trace.name: trace.unit}),
                "x": trace.times,
                "y": trace.values,
                "yaxis": axis,
                "line": {"width": 2, "dash": "dot", "color": colour_code},
                "customdata": [f"raw|{trace.name}||"] * len(trace),
                "hovertemplate": f"%{{y:{d3_format(trace.values)}}} {trace.unit}<extra>{trace.name}</extra>",
            }
        )
        layout[f"yaxis{index + 2}"] = value_axis(
            trace.values,
            title=sel.with_unit(trace.name, {trace.name: trace.unit}),
            overlaying="y",
            side="right",
            anchor="x" if index == 0 else "free",
            position=min(1.0, right_edge + 0.07 * index),
            showgrid=False,
            tickfont={"color": colour_code},
            nticks=6,
        )
        layout[f"yaxis{index + 2}"]["title"]["font"] = {"color": colour_code}
    if not data:
        return empty_figure("No estimates or lab samples in this window")
    return {"data": data, "layout": layout}
