"""The console: server-rendered pages over the domains' service functions, behind the API's auth.

Routers hold no logic: each page reads through a domain's service module, each button posts
a form to a route that calls the same service function as the API, then redirects (POST +
redirect, so reloading a page never repeats an action).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from shiftwatch.auth import Principal
from shiftwatch.collector import registry
from shiftwatch.console.access import csrf_field, login_first, page_access
from shiftwatch.db import Database
from shiftwatch.dependencies import get_db, get_settings
from shiftwatch.errors import Unauthorized
from shiftwatch.sessions import login, logout
from shiftwatch.settings import Settings

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.globals["csrf_field"] = csrf_field

router = APIRouter(prefix="/console", tags=["console"], include_in_schema=False)
# Every page and form: without a session a browser is sent to the login page first.
pages = APIRouter(dependencies=[Depends(login_first)])


def render(request: Request, template: str, **context: Any) -> HTMLResponse:
    context.setdefault("flash", request.query_params.get("flash"))
    return templates.TemplateResponse(request, template, context)


def missing(request: Request, title: str, piece: str) -> HTMLResponse:
    return render(request, "missing.html", title=title, piece=piece)


def back_to(request: Request, route: str, flash: str, **params: Any) -> RedirectResponse:
    """303 See Other after a form post, with a one-line flash message."""
    url = request.url_for(route, **params).include_query_params(flash=flash)
    return RedirectResponse(str(url), status_code=303)


@router.get("/static/console.css", name="console_css")
def console_css() -> FileResponse:
    return FileResponse(HERE / "static" / "console.css", media_type="text/css")


@router.get("/login", name="console_login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/console"):  # noqa: A002 - the conventional name
    return render(request, "login.html", next=_local_path(next), error=None)


@router.post("/login", name="console_login_submit", response_class=HTMLResponse)
def login_submit(
    request: Request,
    token: str = Form(...),
    next: str = Form("/console"),  # noqa: A002
    db: Database = Depends(get_db),
    settings: Settings = Depends(get_settings),
):
    response = RedirectResponse(_local_path(next), status_code=303)
    try:
        login(db, settings, token, response)
    except Unauthorized as exc:
        return render(request, "login.html", next=_local_path(next), error=exc.message)
    return response


@router.post("/logout", name="console_logout")
def logout_submit(request: Request) -> RedirectResponse:
    response = RedirectResponse(str(request.url_for("console_login")), status_code=303)
    logout(response)
    return response


def _local_path(target: str) -> str:
    """Only redirect within the console after login (an open redirect would be a phishing aid)."""
    return target if target.startswith("/console") and "//" not in target else "/console"


@router.get("", name="console_home", dependencies=[Depends(login_first)])
def home(request: Request, _: Principal = Depends(page_access("read"))) -> RedirectResponse:
    return RedirectResponse(str(request.url_for("console_models")), status_code=303)


@pages.get("/models", name="console_models", response_class=HTMLResponse)
def models_page(request: Request, db: Database = Depends(get_db), _: Principal = Depends(page_access("read"))):
    with db.session() as session:
        models = [
            {
                "name": model.name,
                "description": model.description,
                "class_names": model.class_names,
                "versions": registry.list_versions(session, model.name),
            }
            for model in registry.list_models(session)
        ]
    return render(request, "models.html", models=models)


@pages.get("/alerts", name="console_alerts", response_class=HTMLResponse)
def alerts_page(request: Request, _: Principal = Depends(page_access("read"))):
    return missing(request, "Alerts", "drift runs and alerts (shiftwatch.detectors)")


@pages.get("/labeling", name="console_labeling", response_class=HTMLResponse)
def labeling_page(request: Request, _: Principal = Depends(page_access("read"))):
    return missing(request, "Labeling", "the labeling queue (shiftwatch.labeling)")


@pages.get("/rollouts", name="console_rollouts", response_class=HTMLResponse)
def rollouts_page(request: Request, _: Principal = Depends(page_access("read"))):
    return missing(request, "Rollouts", "rollouts (shiftwatch.rollout)")


router.include_router(pages)
