"""Replaying what a phone did offline: each queued action becomes the online call, once, in the order it was done.

An action's outcome is kept under the phone's id for it (`sync_actions`), so a batch sent again answers
`duplicate` with the first answer and calls nothing. An answer of the service that refuses the action (4xx) is
kept as `rejected` with its reason. When a service cannot be reached, that action and every later one answer
`retry` and nothing is kept: the phone sends them again later, in order (a check-in must not overtake its accept).
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shouwang_shared.errors import AppError

from gateway.schemas import SyncActionCreate, SyncResultPublic
from gateway.upstream import Upstreams

ASSIGNMENT_STEPS = {"accept": "accept", "decline": "decline", "check_in": "check-in", "check_out": "check-out"}
_STORED = text(
    "SELECT action_id, outcome, status_code, result FROM sync_actions"
    " WHERE volunteer_id = :v AND action_id = ANY(CAST(:ids AS text[]))"
)
_KEEP = text(
    "INSERT INTO sync_actions (volunteer_id, action_id, kind, device_at, outcome, status_code, result)"
    " VALUES (:v, :a, :k, :at, :o, :s, CAST(:r AS jsonb)) ON CONFLICT DO NOTHING RETURNING action_id"
)


def online_call(action: SyncActionCreate) -> tuple[str, str, dict[str, Any], dict[str, str]] | SyncResultPublic:
    """(service, path, body, headers) of the online call an action stands for, or its rejection."""
    key = f"sync-{action.id}"
    if action.kind == "tip":
        return "intel", "/v1/tips", {"seen_at": action.at.isoformat(), **action.body}, {"Idempotency-Key": key}
    if action.kind == "need":
        return "intel", "/v1/needs", action.body, {"Idempotency-Key": key}
    if action.kind == "redemption":
        return "rewards", "/v1/redemptions", {**action.body, "idempotency_key": key}, {}
    if not action.assignment_id:
        return SyncResultPublic(id=action.id, kind=action.kind, outcome="rejected", status=422,
                          reason={"code": "invalid", "message": "缺少任务编号", "field": "assignment_id"})
    body = {**action.body, "at": action.at.isoformat()} if action.kind in ("check_in", "check_out") else action.body
    return "dispatch", f"/v1/assignments/{action.assignment_id}/{ASSIGNMENT_STEPS[action.kind]}", body, {}


async def sync_actions(
    *, sessions: async_sessionmaker[AsyncSession], upstreams: Upstreams, volunteer_id: str, token: str, actions: list[SyncActionCreate],
) -> list[SyncResultPublic]:
    """Each action's result, in order; done and rejected outcomes are kept so that a replay calls nothing again."""
    async with sessions() as session:  # what this volunteer's earlier syncs kept, read once for the batch
        rows = await session.execute(_STORED, {"v": volunteer_id, "ids": [a.id for a in actions]})
        kept = {row.action_id: (row.outcome, row.status_code, row.result) for row in rows}
    results: list[SyncResultPublic] = []
    for action in actions:
        if action.id in kept:  # done before, in an earlier sync or earlier in this batch
            results.append(_duplicate(action, *kept[action.id]))
            continue
        if results and results[-1].outcome == "retry":
            results.append(SyncResultPublic(id=action.id, kind=action.kind, outcome="retry"))
            continue
        result = await _perform(upstreams, token, action)
        if result.outcome != "retry":
            result = await _keep(sessions, volunteer_id, action, result)
            kept[action.id] = ("rejected", result.status, result.reason) if result.reason is not None else ("done", result.status, result.result)
        results.append(result)
    return results


async def _perform(upstreams: Upstreams, token: str, action: SyncActionCreate) -> SyncResultPublic:
    call = online_call(action)
    if isinstance(call, SyncResultPublic):
        return call
    service, path, body, headers = call
    try:
        answer = await upstreams.send(service, "POST", path, json=body, headers={"authorization": f"Bearer {token}", **headers})
    except AppError:  # the service is down or slow: try again later
        return SyncResultPublic(id=action.id, kind=action.kind, outcome="retry")
    try:
        data = answer.json() if answer.content else None
    except ValueError:  # not JSON (a proxy's error page): only the status tells
        data = None
    if answer.status_code >= 500 or answer.status_code == 429:
        return SyncResultPublic(id=action.id, kind=action.kind, outcome="retry", status=answer.status_code)
    if answer.status_code >= 400:
        reason = data.get("detail") if isinstance(data, dict) and isinstance(data.get("detail"), dict) else {"code": "rejected"}
        return SyncResultPublic(id=action.id, kind=action.kind, outcome="rejected", status=answer.status_code, reason=reason)
    return SyncResultPublic(id=action.id, kind=action.kind, outcome="done", status=answer.status_code, result=data)


async def _keep(sessions: async_sessionmaker[AsyncSession], volunteer_id: str, action: SyncActionCreate, result: SyncResultPublic) -> SyncResultPublic:
    """Keep the outcome; when a concurrent sync kept one first, answer as its duplicate."""
    kept = result.result if result.outcome == "done" else result.reason
    async with sessions() as session, session.begin():
        inserted = (await session.execute(_KEEP, {
            "v": volunteer_id, "a": action.id, "k": action.kind, "at": action.at, "o": result.outcome, "s": result.status,
            "r": orjson.dumps(kept).decode(),
        })).first()
        if inserted is None:
            first = (await session.execute(_STORED, {"v": volunteer_id, "ids": [action.id]})).one()
            return _duplicate(action, first.outcome, first.status_code, first.result)
    return result


def _duplicate(action: SyncActionCreate, outcome: str, status: int, kept: Any) -> SyncResultPublic:
    """The first answer to an action, again: its service answer when it was done, its reason when it was rejected."""
    first = {"result": kept} if outcome == "done" else {"reason": kept}
    return SyncResultPublic(id=action.id, kind=action.kind, outcome="duplicate", status=status, **first)
