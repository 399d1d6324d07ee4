"""Roster imports as stored jobs: an upload is checked and kept (sealed) as a queued job; an import worker takes
queued jobs with `FOR UPDATE SKIP LOCKED`, runs them with progress, and stores the report."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import orjson
from sqlalchemy import text

from shouwang_shared.auth import Principal, Role
from shouwang_shared.errors import AppError, NotFound
from shouwang_shared.pii import PiiCipher

from registry.roster.jobs import ImportReport, import_roster
from registry.roster.parse import open_roster
from registry.roster.write import Sessions

log = logging.getLogger(__name__)

FILE_CONTEXT = "roster_import"  # what the sealed upload is bound to
MAX_STORED_ERRORS = 1000
CHUNK_SIZE = 5_000  # lines per piece
LEASE_SECONDS = 120  # a running job whose worker has not written progress for this long is taken again
MAX_ATTEMPTS = 3  # a job whose worker died this many times fails instead (a file that kills workers is not retried forever)
PUBLIC_COLUMNS = ("id, status, created_by, created_at, started_at, finished_at, total_lines, rows, imported, "
                  "already_registered, error_count, errors, failure")

# The oldest waiting job, or a running one whose worker stopped writing progress (it died: the import is safe to
# run again, people it wrote count as already registered).
CLAIM_SQL = text(
    "UPDATE roster_imports SET status = 'running', started_at = now(), heartbeat_at = now(), attempts = attempts + 1 "
    "WHERE id = (SELECT id FROM roster_imports WHERE status = 'queued' "
    "  OR (status = 'running' AND heartbeat_at < now() - make_interval(secs => :lease) AND attempts < :max_attempts) "
    "  ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED) "
    "RETURNING id, file_enc, created_by, created_role, scope_path"
)
# Running jobs whose worker stopped MAX_ATTEMPTS times: failed, naming why, and their upload dropped.
GIVE_UP_SQL = text(
    "UPDATE roster_imports SET status = 'failed', file_enc = NULL, finished_at = now(), "
    "failure = 'file: ' || attempts || ' 次导入均中断 (the worker stopped during every attempt)' "
    "WHERE status = 'running' AND heartbeat_at < now() - make_interval(secs => :lease) AND attempts >= :max_attempts"
)

_wakers: set[asyncio.Event] = set()


def wake_import_workers() -> None:
    """Tell this process's import workers that a job was just queued."""
    for waker in list(_wakers):
        waker.set()


def _job_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise NotFound("导入任务不存在", field="import_id") from exc


def _public(row: Any) -> dict:
    job = dict(row._mapping)
    job["id"] = str(job["id"])
    job["errors"] = orjson.loads(job["errors"]) if isinstance(job["errors"], str) else job["errors"]
    finished = job["status"] in ("done", "failed")
    job["progress"] = 1.0 if finished else round(min(job["rows"] / max(job["total_lines"], 1), 0.99), 3)
    return job


async def create_import(*, sessions: Sessions, cipher: PiiCipher, principal: Principal, raw: bytes) -> dict:
    """Check an uploaded roster (encoding, header, size) and queue it as an import job; the job as stored."""
    roster = await asyncio.to_thread(open_roster, raw)
    sealed = await asyncio.to_thread(cipher.encrypt, roster.body, context=FILE_CONTEXT)
    job_id = uuid.uuid4()
    async with sessions() as session, session.begin():
        row = (await session.execute(text(
            "INSERT INTO roster_imports (id, created_by, created_role, scope_path, file_enc, total_lines) "
            f"VALUES (:id, :by, :role, :scope, :file, :lines) RETURNING {PUBLIC_COLUMNS}"),
            {"id": job_id, "by": principal.sub, "role": principal.role.value, "scope": principal.scope_path or "",
             "file": sealed, "lines": roster.lines - roster.first_line + 1})).one()
    wake_import_workers()
    return _public(row)


async def get_import(*, sessions: Sessions, principal: Principal, import_id: str) -> dict:
    """An import job with its progress and report; 404 when it does not exist or lies outside the caller's scope."""
    async with sessions() as session:
        row = (await session.execute(text(f"SELECT {PUBLIC_COLUMNS}, scope_path FROM roster_imports WHERE id = :id"),
                                     {"id": _job_id(import_id)})).first()
    if row is None or not (principal.covers(row.scope_path) or row.created_by == principal.sub):
        raise NotFound("导入任务不存在", field="import_id")
    return _public(row)


async def _record_progress(sessions: Sessions, job_id: uuid.UUID, report: ImportReport) -> None:
    """Store how far a running job is (and that its worker is alive)."""
    async with sessions() as session, session.begin():
        await session.execute(text(
            "UPDATE roster_imports SET rows = :rows, imported = :imported, already_registered = :skipped, "
            "error_count = :errors, heartbeat_at = now() WHERE id = :id"),
            {"id": job_id, "rows": report.rows, "imported": report.imported, "skipped": report.already_registered,
             "errors": len(report.errors)})


async def _finish(sessions: Sessions, job_id: uuid.UUID, report: ImportReport) -> None:
    """Store a finished job's report and drop its upload."""
    values = report.as_dict(max_errors=MAX_STORED_ERRORS)
    async with sessions() as session, session.begin():
        await session.execute(text(
            "UPDATE roster_imports SET status = 'done', file_enc = NULL, finished_at = now(), rows = :rows, "
            "imported = :imported, already_registered = :skipped, error_count = :error_count, "
            "errors = CAST(:errors AS jsonb) WHERE id = :id"),
            {"id": job_id, "rows": values["rows"], "imported": values["imported"], "skipped": values["already_registered"],
             "error_count": values["error_count"], "errors": orjson.dumps(values["errors"]).decode()})


async def _fail(sessions: Sessions, job_id: uuid.UUID, failure: str) -> None:
    """Store why a job failed and drop its upload; its counts stay as its last progress left them (pieces written
    before the failure are imported)."""
    async with sessions() as session, session.begin():
        await session.execute(text(
            "UPDATE roster_imports SET status = 'failed', file_enc = NULL, finished_at = now(), failure = :failure WHERE id = :id"),
            {"id": job_id, "failure": failure})


async def run_next_import(*, sessions: Sessions, cipher: PiiCipher, workers: int, lease_s: float = LEASE_SECONDS) -> bool:
    """Take the next waiting import job and run it to its end; False when there was none."""
    async with sessions() as session, session.begin():
        await session.execute(GIVE_UP_SQL, {"lease": lease_s, "max_attempts": MAX_ATTEMPTS})
        job = (await session.execute(CLAIM_SQL, {"lease": lease_s, "max_attempts": MAX_ATTEMPTS})).first()
    if job is None:
        return False
    principal = Principal(sub=job.created_by, role=Role(job.created_role), scope_path=job.scope_path)
    try:
        body = await asyncio.to_thread(cipher.decrypt, job.file_enc, context=FILE_CONTEXT)
        report = await import_roster(sessions=sessions, cipher=cipher, raw=body.encode(), principal=principal, workers=workers,
                                     chunk_size=CHUNK_SIZE,
                                     progress=lambda report: _record_progress(sessions, job.id, report))
    except asyncio.CancelledError:
        raise  # the process is stopping: the job's lease runs out and another worker takes it again
    except AppError as exc:
        await _fail(sessions, job.id, f"{exc.field or 'file'}: {exc.message}")
        return True
    except Exception as exc:
        log.exception("roster import %s failed", job.id)
        await _fail(sessions, job.id, f"{type(exc).__name__}: {exc}"[:500])
        return True
    await _finish(sessions, job.id, report)
    return True


async def run_import_worker(*, sessions: Sessions, cipher: PiiCipher, workers: int, interval_s: float) -> None:
    """Run waiting import jobs one after another until cancelled; idle, look again every `interval_s` seconds or as
    soon as this process queues one."""
    woken = asyncio.Event()
    _wakers.add(woken)
    try:
        while True:
            woken.clear()
            try:
                while await run_next_import(sessions=sessions, cipher=cipher, workers=workers):
                    pass
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the database may be away for a while: look again later
                log.warning("taking a roster import job failed: %s", exc)
            try:
                await asyncio.wait_for(woken.wait(), interval_s)
            except TimeoutError:
                pass
    finally:
        _wakers.discard(woken)
