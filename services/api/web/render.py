"""The pages' templates (services/api/web/templates) and what every page is rendered with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates

from services.api.web import labels
from services.api.web.components import WebComponents
from services.api.web.deadlines import deadline_of, deadline_rule
from services.api.web.session import Session
from services.api.web.trees import named

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=HERE / "templates")
TEMPLATES.env.globals.update(
    deadline_of=deadline_of,
    deadline_rule=deadline_rule,
    fmt_int=labels.fmt_int,
    fmt_rate=labels.fmt_rate,
    fmt_share=labels.fmt_share,
    fmt_fraction=labels.fmt_fraction,
    level_label=labels.level_label,
    whole_label=labels.whole_label,
    levels=labels.LEVELS,
    statuses=labels.STATUSES,
)


def page(
    request: Request, web: WebComponents, name: str, s: Session | None, status: int = 200, **context: Any
) -> Response:
    """Template ``name`` with the session's unit (``me``), its CSRF token and the catalog's choices."""
    return TEMPLATES.TemplateResponse(
        request,
        name,
        {
            "session": s,
            "me": named(web.tree, s.principal.unit) if s is not None else None,
            "csrf": s.csrf if s is not None else "",
            "series_choices": web.config.series_choices,
            "kind_choices": web.config.kind_choices,
            **context,
        },
        status_code=status,
    )


def error_page(request: Request, message: str, status: int, **context: Any) -> Response:
    return TEMPLATES.TemplateResponse(
        request, "error.html", {"message": message, "status": status, **context}, status_code=status
    )
