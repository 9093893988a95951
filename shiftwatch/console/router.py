"""The console: server-rendered pages over the domains' service functions, behind the API's auth.

Routers hold no logic: each page reads through a domain's service module, each button posts
a form to a route that calls the same service function as the API, then redirects (POST +
redirect, so reloading a page never repeats an action).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from shiftwatch.auth import Principal
from shiftwatch.collector import registry
from shiftwatch.collector.inputs import InputStore
from shiftwatch.console import alert_view, pareto_plot
from shiftwatch.console.access import PageApprover, PageOperator, PageReader, csrf_field, csrf_protect, login_first
from shiftwatch.console.labeling_view import open_tasks
from shiftwatch.console.rollout_view import candidate_summary, distribution_plots
from shiftwatch.db import Database, utcnow
from shiftwatch.dependencies import DbDep, ReadDbDep, SettingsDep
from shiftwatch.detectors import alerts
from shiftwatch.errors import Forbidden, NotFound, ShiftwatchError, Unauthorized
from shiftwatch.labeling import queue
from shiftwatch.labeling.policy import Budget
from shiftwatch.rollout import controller, status
from shiftwatch.rollout.evidence import accuracy_undecided, evidence_rows
from shiftwatch.rollout.report import framed_as_comparison, write_report
from shiftwatch.rollout.schemas import RolloutPlan
from shiftwatch.security_headers import SAME_ORIGIN_FRAMING
from shiftwatch.sessions import (
    check_same_origin,
    has_session,
    login,
    logout,
    read_flash,
    served_over_https,
    signed_flash,
)

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.globals["csrf_field"] = csrf_field
templates.env.globals["has_session"] = has_session

router = APIRouter(prefix="/console", tags=["console"], include_in_schema=False)
# Every page and form: without a session a browser is sent to the login page first.
pages = APIRouter(dependencies=[Depends(login_first)])


def render(request: Request, template: str, **context: Any) -> HTMLResponse:
    context.setdefault("flash", read_flash(request, request.query_params.get("flash")))
    return templates.TemplateResponse(request, template, context)


def back_to(request: Request, route: str, flash: str, **params: Any) -> RedirectResponse:
    """303 See Other after a form post, with a one-line flash message (signed: only this server's text shows)."""
    url = request.url_for(route, **params).include_query_params(flash=signed_flash(request, flash))
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
    db: DbDep,
    settings: SettingsDep,
    token: str = Form(...),
    next: str = Form("/console"),  # noqa: A002 - the conventional name
):
    response = RedirectResponse(_local_path(next), status_code=303)
    try:
        check_same_origin(request)  # login CSRF: another site must not log a person in as someone else
        login(db, settings, token, response, secure=served_over_https(request, settings.public_url, settings.trusted_proxies))
    except (Unauthorized, Forbidden) as exc:
        page = render(request, "login.html", next=_local_path(next), error=exc.message)
        page.status_code = exc.status_code
        return page
    return response


@router.post("/logout", name="console_logout")
async def logout_submit(request: Request) -> RedirectResponse:
    """End the session; the form carries the CSRF token like every other console form, so another site
    cannot log a person out (issue 27.7). Without a live cookie there is nothing to protect: the cookie is cleared."""
    if has_session(request):
        await csrf_protect(request)
    response = RedirectResponse(str(request.url_for("console_login")), status_code=303)
    logout(request, response)
    return response


def _local_path(target: str) -> str:
    """Only redirect within the console after login (an open redirect would be a phishing aid)."""
    return target if target.startswith("/console") and "//" not in target else "/console"


@router.get("", name="console_home", dependencies=[Depends(login_first)])
def home(request: Request, _: PageReader) -> RedirectResponse:
    return RedirectResponse(str(request.url_for("console_models")), status_code=303)


@pages.get("/models", name="console_models", response_class=HTMLResponse)
def models_page(request: Request, db: ReadDbDep, _: PageReader):
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
def alerts_page(
    request: Request,
    db: ReadDbDep,
    settings: SettingsDep,
    _: PageReader,
    state: str | None = None,
):

    with db.session() as session:
        rows = [alerts.to_out(session, settings.public_url, a) for a in alerts.list_alerts(session, state=state or None)]
    return render(request, "alerts.html", alerts=rows)


@pages.get("/alerts/{alert_id}", name="console_alert", response_class=HTMLResponse)
def alert_page(
    request: Request,
    alert_id: int,
    db: ReadDbDep,
    settings: SettingsDep,
    _: PageReader,
):

    with db.session() as session:
        alert = alerts.to_out(session, settings.public_url, alerts.get(session, alert_id))
        view = alert_view.build(session, alert)
    report_url = request.url_for("console_alert_report", alert_id=alert_id) if alert.report_url else None
    evidence = json.dumps(alert.evidence, indent=2, default=str)
    shifted = alert.evidence.get("shifted_dimensions") or []
    return render(request, "alert.html", alert=alert, evidence=evidence, report_url=report_url, shifted=shifted,
                  view=view)


@pages.get("/inputs/{ref:path}", name="console_input", response_class=FileResponse)
def input_image(ref: str, settings: SettingsDep, _: PageReader):
    """A stored input image (the alert page's thumbnails); the store refuses anything but its own references."""
    store = InputStore(settings.data_dir)
    return FileResponse(store.path(ref), media_type=store.media_type(ref))


@pages.get("/alerts/{alert_id}/report", name="console_alert_report", response_class=FileResponse)
def alert_report(
    alert_id: int,
    db: ReadDbDep,
    settings: SettingsDep,
    _: PageReader,
):
    """The alert's Evidently report, for the alert page's iframe (same file the API serves)."""

    with db.session() as session:
        path = alerts.report_file(session, settings.data_dir, alert_id)
    return FileResponse(path, media_type="text/html", headers=SAME_ORIGIN_FRAMING)  # the alert page frames it


ALERT_ACTIONS = ("acknowledge", "resolve")


@pages.post("/alerts/{alert_id}/{action}", name="console_alert_action", dependencies=[Depends(csrf_protect)])
def alert_action(
    request: Request,
    alert_id: int,
    action: str,
    db: DbDep,
    settings: SettingsDep,
    principal: PageOperator,
) -> RedirectResponse:
    """Acknowledge or resolve through the same service functions as POST /v1/alerts/{id}/{action}."""
    if action not in ALERT_ACTIONS:
        raise NotFound(f"no alert action {action!r}")
    with db.session() as session:
        if action == "acknowledge":
            alerts.acknowledge(session, alert_id, principal.name, utcnow())
        else:
            alerts.resolve(session, alerts.Outbox.of(settings), alert_id, principal.name, utcnow())
    past = {"acknowledge": "acknowledged", "resolve": "resolved"}[action]
    return back_to(request, "console_alert", f"Alert {alert_id} {past} by {principal.name}.", alert_id=alert_id)


@pages.get("/labeling", name="console_labeling", response_class=HTMLResponse)
def labeling_page(
    request: Request,
    db: ReadDbDep,
    settings: SettingsDep,
    _: PageReader,
):

    with db.session() as session:
        names = [model.name for model in registry.list_models(session)]
        statuses = [queue.queue_status(session, name, Budget.of(settings, name).daily) for name in names]
        tasks = {name: open_tasks(session, settings.label_studio_url, name) for name in names}
    return render(request, "labeling.html", statuses=statuses, tasks=tasks, studio_url=settings.label_studio_url)


@pages.get("/rollouts", name="console_rollouts", response_class=HTMLResponse)
def rollouts_page(request: Request, db: ReadDbDep, _: PageReader):

    with db.session() as session:
        rollouts = status.list_rollouts(session)
    return render(request, "rollouts.html", rollouts=rollouts)


@pages.get("/rollouts/{rollout_id}", name="console_rollout", response_class=HTMLResponse)
def rollout_page(
    request: Request,
    rollout_id: int,
    db: ReadDbDep,
    principal: PageReader,
):

    with db.session() as session:
        rollout = status.describe_id(session, rollout_id)
        plots = distribution_plots(session, rollout)
    # How the candidate was chosen, when `retrain --budget` chose it: its recipe among the others measured.
    plots += pareto_plot.charts((rollout.compression_report or {}).get("budget_search") or {})
    latest = rollout.latest_comparison
    may_approve = "approve" in principal.scopes
    return render(
        request,
        "rollout.html",
        rollout=rollout,
        evidence=evidence_rows(latest.metrics, RolloutPlan.model_validate(rollout.plan)) if latest else [],
        undecided=accuracy_undecided(latest.metrics if latest else None),
        candidate=candidate_summary(rollout.compression_report),
        plots=plots,
        can_decide=rollout.state in ("shadow", "canary") and may_approve,
        can_approve=rollout.state == "canary" and rollout.last_decision.get("decision") == "await_approval"
        and may_approve,
    )


@pages.get("/rollouts/{rollout_id}/comparison", name="console_rollout_comparison", response_class=HTMLResponse)
def rollout_comparison(
    request: Request,
    rollout_id: int,
    db: ReadDbDep,
    settings: SettingsDep,
    _: PageReader,
) -> HTMLResponse:
    """Evidently's comparison of candidate and production outputs, headed by what it is (not an alarm)."""

    with db.session() as session:
        path = write_report(session, settings.data_dir, controller.get_rollout(session, rollout_id), utcnow())
    back = str(request.url_for("console_rollout", rollout_id=rollout_id))
    return HTMLResponse(framed_as_comparison(path.read_text(encoding="utf-8"), back))


def _decide(request: Request, db: Database, rollout_id: int, principal: Principal, reason: str, approve: bool):
    """Approve or reject through the same controller functions as the API (evidence gate included)."""

    verb = "approved" if approve else "rejected"
    try:
        with db.session() as session:
            if approve:
                outbox = alerts.Outbox.of(request.app.state.settings)  # the retired version's alerts resolve: webhooks say so
                controller.approve(session, rollout_id, actor=principal.name, reason=reason, outbox=outbox)
            else:
                controller.reject(session, rollout_id, actor=principal.name, reason=reason)
    except ShiftwatchError as exc:
        return back_to(request, "console_rollout", f"Not {verb}: {exc.message}", rollout_id=rollout_id)
    outcome = ": promoted to production." if approve else "."
    return back_to(request, "console_rollout", f"{verb.capitalize()} by {principal.name}{outcome}", rollout_id=rollout_id)


@pages.post("/rollouts/{rollout_id}/approve", name="console_rollout_approve", dependencies=[Depends(csrf_protect)])
def rollout_approve(
    request: Request,
    rollout_id: int,
    db: DbDep,
    principal: PageApprover,
    reason: str = Form(""),
    confirm: str = Form(""),
) -> RedirectResponse:
    """Approve, as POST /v1/rollouts/{id}/approve does, once the person has ticked the confirmation."""
    if confirm != "yes":
        return back_to(request, "console_rollout", "Not approved: tick the confirmation box first.",
                       rollout_id=rollout_id)
    return _decide(request, db, rollout_id, principal, reason, approve=True)


@pages.post("/rollouts/{rollout_id}/reject", name="console_rollout_reject", dependencies=[Depends(csrf_protect)])
def rollout_reject(
    request: Request,
    rollout_id: int,
    db: DbDep,
    principal: PageApprover,
    reason: str = Form(""),
) -> RedirectResponse:
    """Reject, as POST /v1/rollouts/{id}/reject does (a reason is required)."""
    return _decide(request, db, rollout_id, principal, reason, approve=False)


router.include_router(pages)
