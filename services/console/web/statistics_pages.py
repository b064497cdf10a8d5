"""Problem statistics (问题统计): per month, category, grid or agency (a street: per community too),
the hotline's three rates — response 响应率, resolution 解决率, satisfaction 满意率 — closure and
on-time closure, reopened and reworked cases and the hours to close, as a table and as bars drawn
here as inline SVG (no script, no CDN), with the issues service's CSV behind a download link."""

from __future__ import annotations

import re
from html import escape
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from ..bootstrap import deps
from ..gateway import ApiError
from .guard import signed_in
from .i18n import Translator
from .problem_pages import TOKEN, street_communities
from .render import language, passthrough, render
from .sessions import Person

router = APIRouter(include_in_schema=False)

ROLES = ("secretary", "street_admin", "hotline")
COMMUNITY_BY = ("month", "category", "grid", "agency")
STREET_BY = ("community", "month", "category", "agency")
MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
#: The three rates of the chart, each with its colour (AA contrast against white).
CHART_RATES = (("response", "#0b5cad"), ("resolution", "#1e6b3a"), ("satisfaction", "#8a4b00"))


def _scope(person: Person, request: Request, communities: list[dict[str, Any]]) -> tuple[str, str]:
    """What the page is about: ``("street", street)`` or ``("community", community)`` ('' unknown)."""
    me = person.principal
    if me.community:
        return "community", me.community
    asked = request.query_params.get("community", "")
    if asked and TOKEN.match(asked) and (me.role != "street_admin" or asked in {c["community"] for c in communities}):
        return "community", asked
    if me.role == "street_admin" and me.street:
        return "street", me.street
    return "community", ""


def _params(request: Request, scope: str) -> dict[str, str]:
    q = request.query_params
    options = STREET_BY if scope == "street" else COMMUNITY_BY
    by = q.get("by", "")
    return {
        "by": by if by in options else options[0],
        "from": q.get("from", ""),
        "to": q.get("to", ""),
    }


def _path(scope: str, ident: str) -> str:
    return f"/v1/streets/{ident}/statistics" if scope == "street" else f"/v1/communities/{ident}/statistics"


def group_label(t: Translator, by: str, key: Any, names: dict[str, str]) -> str:
    """A group's key in words: a category's or an agency kind's label, a community's name."""
    if key is None or key == "":
        return t("stats_none_key")
    key = str(key)
    if by == "category" and t.has(f"category_{key}"):
        return t(f"category_{key}")
    if by == "agency" and t.has(f"agency_kind_{key}"):
        return t(f"agency_kind_{key}")
    if by == "community":
        return names.get(key, key)
    return key


def bar_chart(t: Translator, groups: list[dict[str, Any]], labels: list[str]) -> str:
    """The three rates of each group as horizontal bars, an inline SVG that scales to its box."""
    width, label_w, bar_h, gap = 640, 170, 12, 14
    plot_w = width - label_w - 60
    legend_h = 30
    height = legend_h + len(groups) * (3 * bar_h + gap) + 10
    title = t("stats_chart_title")
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="chart-title" class="chart" preserveAspectRatio="xMinYMin meet">',
        f'<title id="chart-title">{escape(title)}</title>',
    ]
    x = 0
    for rate, colour in CHART_RATES:
        name = escape(t(f"stats_rate_{rate}"))
        parts.append(f'<rect x="{x}" y="4" width="14" height="14" fill="{colour}"/>')
        parts.append(f'<text x="{x + 20}" y="16" font-size="14" fill="#1f2933">{name}</text>')
        x += 150
    y = legend_h
    for group, label in zip(groups, labels, strict=True):
        parts.append(
            f'<text x="{label_w - 8}" y="{y + bar_h * 2}" font-size="14" text-anchor="end" '
            f'fill="#1f2933">{escape(label[:18])}</text>'
        )
        for i, (rate, colour) in enumerate(CHART_RATES):
            value = (group.get("rates") or {}).get(rate)
            top = y + i * bar_h
            parts.append(f'<rect x="{label_w}" y="{top}" width="{plot_w}" height="{bar_h - 2}" fill="#eef2f6"/>')
            if value is not None:
                w = round(max(0.0, min(1.0, float(value))) * plot_w, 1)
                parts.append(
                    f'<rect x="{label_w}" y="{top}" width="{w}" height="{bar_h - 2}" fill="{colour}">'
                    f"<title>{escape(label)} · {escape(t(f'stats_rate_{rate}'))} {value * 100:.1f}%</title></rect>"
                )
            text = f"{value * 100:.0f}%" if value is not None else "—"
            parts.append(
                f'<text x="{label_w + plot_w + 6}" y="{top + bar_h - 3}" font-size="11" fill="#52606d">{text}</text>'
            )
        y += 3 * bar_h + gap
    parts.append("</svg>")
    return "".join(parts)


@router.get("/statistics")
async def statistics_page(request: Request, person: Person = Depends(signed_in(*ROLES))) -> Response:
    me = person.principal
    communities = await street_communities(person, request)
    scope, ident = _scope(person, request, communities)
    p = _params(request, scope)
    t = Translator(language(request))
    data: dict[str, Any] | None = None
    error: ApiError | None = None
    status = 200
    if ident:
        query = {"by": p["by"], "from": p["from"] or None, "to": p["to"] or None}
        try:
            data = await deps(request).gateway.get(me, "issues", _path(scope, ident), **query)
        except ApiError as err:
            if err.status >= 500 or err.status in (401, 403, 404):
                raise
            error, status = err, err.status
    names = {c["community"]: c["name"] for c in communities}
    groups = (data or {}).get("groups", [])
    labels = [group_label(t, p["by"], g.get("key"), names) for g in groups]
    base = {"community": ident if scope == "community" and not me.community else None}
    export = urlencode({k: v for k, v in {**base, **p}.items() if v})
    return render(
        request,
        "statistics.html",
        person,
        status=status,
        scope=scope,
        ident=ident,
        p=p,
        tabs=STREET_BY if scope == "street" else COMMUNITY_BY,
        communities=communities,
        data=data,
        rows=list(zip(groups, labels, strict=True)),
        chart=bar_chart(t, groups, labels) if groups else "",
        tab_query=lambda by: urlencode({k: v for k, v in {**base, **p, "by": by}.items() if v}),
        export_query=export,
        error=error,
    )


@router.get("/statistics/export")
async def statistics_export(request: Request, person: Person = Depends(signed_in(*ROLES))) -> Response:
    """The statistics as the issues service's CSV, fetched as this person and passed through."""
    me = person.principal
    communities = await street_communities(person, request)
    scope, ident = _scope(person, request, communities)
    if not ident:
        raise ApiError(404, {"code": "not_found", "message": "community", "field": "community"}, "console")
    p = _params(request, scope)
    params = {"format": "csv", "by": p["by"], **{k: p[k] for k in ("from", "to") if MONTH.match(p[k])}}
    answer = await deps(request).gateway.raw(me, "GET", "issues", _path(scope, ident), params=params)
    return passthrough(answer)
