"""Pages and fragments from Jinja templates, with the person, the language and the CSRF token.

A page is one template; a live region is one named block of it, rendered alone when the page is
asked for ``?fragment=<block>`` (the live updates fetch exactly that).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from shared.events import SHANGHAI

from .i18n import Translator
from .sessions import LANG_COOKIE, Person

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def local_time(value: Any) -> str:
    """An ISO timestamp as the community reads it: Asia/Shanghai wall time, ``YYYY-MM-DD HH:MM``
    ('' for none; a text that is no timestamp as it is).  The templates' ``local`` filter."""
    if not isinstance(value, str) or not value:
        return ""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is not None:
        moment = moment.astimezone(SHANGHAI)
    return moment.strftime("%Y-%m-%d %H:%M")


ENV = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,  # the templates do not change while the service runs: no stat per page
)
ENV.filters["local"] = local_time

#: The pages each role finds in the navigation (path, label key), in order.
NAVIGATION: dict[str, tuple[tuple[str, str], ...]] = {
    "secretary": (
        ("/today", "nav_today"),
        ("/board", "nav_board"),
        ("/problems", "nav_problems"),
        ("/statistics", "nav_statistics"),
        ("/households", "nav_households"),
        ("/directory", "nav_directory"),
        ("/map", "nav_map"),
        ("/accounts", "nav_accounts"),
        ("/audit", "nav_audit"),
    ),
    "street_admin": (
        ("/board", "nav_board"),
        ("/problems", "nav_problems"),
        ("/statistics", "nav_statistics"),
    ),
    "agency": (("/problems", "nav_problems"),),
    "hotline": (("/problems", "nav_problems"), ("/statistics", "nav_statistics")),
    "ops": (("/accounts", "nav_accounts"), ("/directory", "nav_directory")),
    "grid_worker": (("/board", "nav_board"), ("/households", "nav_households"), ("/map", "nav_map")),
}


def language(request: Request) -> str:
    lang = request.cookies.get(LANG_COOKIE, "zh")
    return lang if lang in ("zh", "en") else "zh"


def render(
    request: Request,
    template: str,
    person: Person | None,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """The page (or, with ``?fragment=name``, that one block of it) as HTML."""
    lang = language(request)
    values = {
        "request": request,
        "t": Translator(lang),
        "lang": lang,
        "me": person,
        "csrf": person.csrf if person else context.pop("pre_csrf", ""),
        "nav": NAVIGATION.get(person.role, ()) if person else (),
        "path": request.url.path,
        **context,
    }
    tmpl = ENV.get_template(template)
    fragment = request.query_params.get("fragment")
    if fragment and fragment in tmpl.blocks:
        html = "".join(tmpl.blocks[fragment](tmpl.new_context(values)))
    else:
        html = tmpl.render(values)
    response = HTMLResponse(html, status_code=status, headers=headers)
    # pages carry personal data: never cached by the browser or anything between
    response.headers["Cache-Control"] = "no-store"
    return response


def done_label(request: Request) -> str | None:
    """The label key of a success message in the URL (``?done=…``), only ever one of ours."""
    done = request.query_params.get("done", "")
    return f"done_{done}" if done and done.isidentifier() and Translator("zh").has(f"done_{done}") else None


def passthrough(answer: Any) -> Response:
    """A service's file answer (a CSV or XLSX export) handed on as it came, never cached."""
    headers = {k: v for k, v in answer.headers.items() if k.lower() in ("content-type", "content-disposition")}
    headers["Cache-Control"] = "no-store"
    return Response(answer.content, headers=headers)
