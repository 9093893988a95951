"""Alert webhooks: an outbox row per (event, endpoint), sent by a background job, signed, retried with backoff.

Rows are written in the transaction that changes the alert, so an alert change and its
notification are never out of step; the drift run never waits on an HTTP call. Each body is
signed with ``shiftwatch.signing.sign`` using the endpoint's own secret; receivers verify the
``X-Shiftwatch-Signature`` over "timestamp.body" and may deduplicate on ``X-Shiftwatch-Delivery``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from shiftwatch.db import Database
from shiftwatch.detectors.tables import WebhookDelivery
from shiftwatch.signing import sign

log = logging.getLogger(__name__)

# 30 s, 1 min, 2 min, ... capped at 1 h; 8 attempts span about 2 hours before a delivery is given up.
BACKOFF_BASE_S = 30
BACKOFF_MAX_S = 3600
MAX_ATTEMPTS = 8
# A sender holds a row this long while it posts (timeout + margin), so replicas never send it twice at once.
LEASE_S = 60
TIMEOUT_S = 10.0
BATCH = 50
SLACK_PREFIX = "slack+"
SEVERITY_EMOJI = {"low": ":large_blue_circle:", "medium": ":large_orange_circle:", "high": ":red_circle:"}


@dataclass(frozen=True, slots=True)
class Endpoint:
    url: str
    format: str  # "json" or "slack"
    secret: str | None


def endpoints(webhooks: Sequence[str], secrets: Mapping[str, str]) -> list[Endpoint]:
    """``alert_webhooks`` entries: ``slack+https://...`` (or a hooks.slack.com URL) get the Slack payload.

    ``secrets`` (``alert_webhook_secrets``) is keyed by the entry as listed or by its bare URL.
    """
    found = []
    for listed in webhooks:
        url = listed[len(SLACK_PREFIX) :] if listed.startswith(SLACK_PREFIX) else listed
        kind = "slack" if listed.startswith(SLACK_PREFIX) or "hooks.slack.com" in url else "json"
        secret = secrets.get(listed) or secrets.get(url)
        found.append(Endpoint(url=url, format=kind, secret=secret))
    return found


def json_payload(alert: dict[str, Any], event: str) -> dict[str, Any]:
    return {"event": event, "alert": alert}


def slack_payload(alert: dict[str, Any], event: str) -> dict[str, Any]:
    """Slack's incoming-webhook shape: a plain ``text`` fallback and ``blocks`` for people."""
    verb = {"alert.opened": "opened", "alert.escalated": "escalated", "alert.resolved": "resolved"}.get(
        event, "updated"
    )
    harm = alert.get("harm") or {}
    harm_text = str(harm.get("sentence") or "unknown: no reference confidence, accuracy estimator or labels")
    text = f"[{alert['severity']}] {alert['model']}:{alert['version']} {alert['title']} ({verb})"
    fields = [
        f"*Severity*\n{SEVERITY_EMOJI.get(alert['severity'], '')} {alert['severity']}",
        f"*{'Accuracy' if harm.get('source', 'confidence_drop') != 'confidence_drop' else 'Harm'}*\n{harm_text}",
        f"*Effect size*\n{alert['effect_size']:.3g} {alert['effect_unit']}",
        f"*p-value (Holm)*\n{'n/a' if alert['p_value'] is None else format(alert['p_value'], '.2g')}",
    ]
    links = [f"<{alert['console_url']}|alert #{alert['id']} in the console>"]
    if alert["console_report_url"]:
        links.append(f"<{alert['console_report_url']}|drift report>")
    return {
        "text": text,
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": f"Drift alert {verb}: {alert['model']}:{alert['version']}"},
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": alert["title"]}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(links)}]},
        ],
    }


def enqueue(
    session: Session, targets: Sequence[Endpoint], alert_id: int, body: dict[str, Any], event: str, now: datetime
) -> list[WebhookDelivery]:
    """Outbox rows for every endpoint, in the caller's transaction; ``body`` is the alert's outward shape (``AlertOut``)."""
    rows = []
    for target in targets:
        payload = slack_payload(body, event) if target.format == "slack" else json_payload(body, event)
        rows.append(
            WebhookDelivery(
                alert_id=alert_id,
                url=target.url,
                format=target.format,
                event=event,
                payload=payload,
                next_attempt_at=now,
            )
        )
    session.add_all(rows)
    session.flush()
    return rows


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(BACKOFF_BASE_S * 2 ** (attempts - 1), BACKOFF_MAX_S))


def _lease(db: Database, delivery_id: Any, now: datetime) -> WebhookDelivery | None:
    with db.session() as session:
        taken = session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery_id,
                WebhookDelivery.status == "pending",
                or_(WebhookDelivery.leased_until.is_(None), WebhookDelivery.leased_until < now),
            )
            .values(leased_until=now + timedelta(seconds=LEASE_S))
            .returning(WebhookDelivery.id)
            .execution_options(synchronize_session=False)
        ).first()
        return session.get(WebhookDelivery, delivery_id) if taken is not None else None


def _post(client: httpx.Client, delivery: WebhookDelivery, secret: str | None) -> tuple[int | None, str | None]:
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Shiftwatch-Event": delivery.event,
        "X-Shiftwatch-Delivery": str(delivery.id),
    }
    if secret:
        headers.update(sign(secret, body))
    try:
        response = client.post(delivery.url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"[:2000]
    if 200 <= response.status_code < 300:
        return response.status_code, None
    return response.status_code, f"HTTP {response.status_code}: {response.text[:500]}"


def deliver_due(db: Database, targets: Sequence[Endpoint], now: datetime) -> dict[str, int]:
    """Send every pending delivery whose time has come, signed with ``targets``' secrets; returns counts by outcome."""
    with db.session() as session:
        due = list(
            session.scalars(
                select(WebhookDelivery.id)
                .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(BATCH)
            )
        )
    secrets = {e.url: e.secret for e in targets}
    counts = {"delivered": 0, "retrying": 0, "failed": 0}
    with httpx.Client(timeout=TIMEOUT_S) as client:
        for delivery_id in due:
            delivery = _lease(db, delivery_id, now)
            if delivery is None:  # another replica holds it
                continue
            status_code, error = _post(client, delivery, secrets.get(delivery.url))
            with db.session() as session:
                row = session.get(WebhookDelivery, delivery_id)
                assert row is not None
                row.attempts += 1
                row.last_status_code, row.last_error, row.leased_until = status_code, error, None
                if error is None:
                    row.status, row.delivered_at = "delivered", now
                    counts["delivered"] += 1
                elif row.attempts >= MAX_ATTEMPTS:
                    row.status = "failed"
                    counts["failed"] += 1
                    log.warning("webhook %s to %s failed for good: %s", delivery_id, row.url, error)
                else:
                    row.next_attempt_at = now + backoff(row.attempts)
                    counts["retrying"] += 1
    return counts
