"""Explanations drawn: a version's input importance and partial-dependence curves (soft-sensor page), and one
estimate's input contributions (operator live page, on click). Numbers and ranges follow ``formatting``."""

from __future__ import annotations

from typing import Any

from dash import dcc, html

from ..formatting import d3_format, number_text, quantity, value_axis
from .common import PALETTE, base_layout

#: Inputs listed in a contributions chart (the rest are summed into one bar, so the total still adds up).
MAX_CONTRIBUTION_BARS = 10


def importance_figure(explanation: dict[str, Any]) -> dict[str, Any]:
    """Permutation importance as horizontal bars, most important on top, with the shuffles' spread."""
    rows = list(reversed(explanation["importance"]))
    unit = explanation.get("output_unit", "")
    values = [row["mean"] for row in rows]
    return {
        "data": [
            {
                "type": "bar",
                "orientation": "h",
                "x": values,
                "y": [row["feature"] for row in rows],
                "error_x": {"type": "data", "array": [row["std"] for row in rows], "visible": True},
                "marker": {"color": PALETTE[0]},
                "hovertemplate": f"%{{y}}: RMSE +%{{x:{d3_format(values)}}} {unit}<extra></extra>",
            }
        ],
        "layout": base_layout(
            height=max(180, 34 * len(rows) + 70),
            margin={"l": 10, "r": 20, "t": 10, "b": 10},
            showlegend=False,
            hovermode="closest",
            xaxis={"title": {"text": f"holdout RMSE increase when shuffled [{unit}]" if unit else "RMSE increase"}},
            yaxis={"automargin": True, "showgrid": False},
        ),
    }


def curve_figure(curve: dict[str, Any], *, output: str, output_unit: str) -> dict[str, Any]:
    """One partial-dependence curve: the average estimate as one input moves over its holdout range."""
    x_title = f"{curve['feature']} [{curve['unit']}]" if curve.get("unit") else curve["feature"]
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "x": curve["grid"],
                "y": curve["average"],
                "line": {"color": PALETTE[1], "width": 3},
                "hovertemplate": (
                    f"%{{x:{d3_format(curve['grid'])}}} → %{{y:{d3_format(curve['average'])}}} {output_unit}"
                    "<extra></extra>"
                ),
            }
        ],
        "layout": base_layout(
            height=260,
            margin={"l": 10, "r": 15, "t": 10, "b": 10},
            showlegend=False,
            hovermode="closest",
            xaxis={"title": {"text": x_title, "font": {"size": 13}}, "nticks": 6},
            # a short title: a rotated output name is longer than this small plot is high
            yaxis=value_axis(
                curve["average"], title=f"estimate [{output_unit}]" if output_unit else "estimate", nticks=5
            ),
        ),
    }


def explanation_section(explanation: dict[str, Any] | None) -> list:
    """The soft-sensor page's "What its estimates depend on" for one version."""
    if explanation is None:
        return [
            html.P(
                "No explanation measured yet (the training workflow measures one on every candidate's holdout).",
                className="muted",
            )
        ]
    output, unit = explanation.get("output", ""), explanation.get("output_unit", "")
    children: list = [
        html.P(
            f"Estimates of {output}, measured on {number_text(explanation['rows'])} holdout rows"
            f" ({explanation['source']}); holdout RMSE "
            f"{quantity(explanation.get('rmse'), unit)}. Importance: how much worse the estimate gets when one input "
            "is shuffled. Curves: the average estimate as one input moves, the others as they were.",
            className="muted",
        ),
        html.Div(
            dcc.Graph(figure=importance_figure(explanation), config={"displaylogo": False, "responsive": True}),
            **{"data-testid": "importance"},
        ),
    ]
    if explanation["curves"]:
        children.append(
            html.Div(
                [
                    dcc.Graph(
                        figure=curve_figure(curve, output=output, output_unit=unit),
                        config={"displaylogo": False, "responsive": True},
                        style={"height": "260px"},
                    )
                    for curve in explanation["curves"]
                ],
                className="curve-grid",
                **{"data-testid": "partial-dependence"},
            )
        )
    return children


def contributions_figure(answer: dict[str, Any], unit: str) -> dict[str, Any]:
    """A waterfall from the base value through each input's contribution to the raw estimate."""
    items = list(answer["contributions"])
    if len(items) > MAX_CONTRIBUTION_BARS:
        rest = items[MAX_CONTRIBUTION_BARS - 1 :]
        items = items[: MAX_CONTRIBUTION_BARS - 1] + [
            {"feature": f"{len(rest)} other inputs", "contribution": sum(i["contribution"] for i in rest)}
        ]
    labels = (
        [f"base value {quantity(answer['base_value'], unit)}"]
        + [i["feature"] for i in items]
        + [f"raw estimate {quantity(answer['raw_estimate'], unit)}"]
    )
    values = [answer["base_value"]] + [i["contribution"] for i in items] + [answer["raw_estimate"]]
    measures = ["absolute"] + ["relative"] * len(items) + ["total"]
    running = [answer["base_value"]]
    for item in items:
        running.append(running[-1] + item["contribution"])
    return {
        "data": [
            {
                "type": "waterfall",
                "orientation": "h",
                "y": labels,
                "x": values,
                "measure": measures,
                # the base value and the raw estimate are on their axis labels' line in the sentence above
                "text": ["" if m != "relative" else f"{v:+.3g}" for v, m in zip(values, measures, strict=True)],
                "textposition": "auto",
                "increasing": {"marker": {"color": PALETTE[1]}},
                "decreasing": {"marker": {"color": PALETTE[0]}},
                "totals": {"marker": {"color": "#5d6d7e"}},
                "hovertemplate": "%{y}: %{x}<extra></extra>",
            }
        ],
        "layout": base_layout(
            height=60 + 30 * len(labels),
            margin={"l": 10, "r": 20, "t": 10, "b": 10},
            showlegend=False,
            hovermode="closest",
            xaxis=value_axis(running + [answer["raw_estimate"]], title=f"estimate [{unit}]" if unit else "estimate"),
            yaxis={"autorange": "reversed", "automargin": True, "showgrid": False},
        ),
    }


def explanation_children(answer: dict[str, Any], unit: str) -> list:
    """One estimate explained: the sentence with the figures, the waterfall, the inputs out of range."""
    outside = answer["outside_envelope"]
    estimate = answer.get("estimate")
    figures = (
        f"{answer['version']} at {answer['time']:%Y-%m-%d %H:%M:%S} UTC: base value "
        f"{quantity(answer['base_value'], unit)} + input contributions = raw estimate "
        f"{quantity(answer['raw_estimate'], unit)}"
    )
    if estimate is not None:
        figures += f"; + bias update {quantity(answer['bias_update'], unit)} = estimate {quantity(estimate, unit)}"
    method = {
        "tree_shap": "TreeSHAP (exact, computed in the model's runtime)",
        "exact_shapley": "Shapley values against the version's holdout sample (exact)",
        "sampled_shapley": "Shapley values against the version's holdout sample (sampled)",
    }.get(answer["method"], answer["method"])
    children: list = [
        html.P(figures + ".", **{"data-testid": "explanation-figures"}),
        html.P(f"Method: {method}; base value over {answer['background']}.", className="muted"),
        dcc.Graph(figure=contributions_figure(answer, unit), config={"displaylogo": False, "responsive": True}),
    ]
    if outside:
        children.append(
            html.Div(
                [
                    html.Strong("Inputs outside the training envelope: "),
                    "; ".join(
                        f"{item['feature']} {number_text(item['value'])}"
                        f" ({'below' if item['bound'] == 'min' else 'above'} {number_text(item['limit'])})"
                        for item in outside
                    ),
                ],
                className="dash-error",
                **{"data-testid": "explanation-outside"},
            )
        )
    else:
        children.append(
            html.P("Every input was inside the training envelope.", **{"data-testid": "explanation-outside"})
        )
    return children
