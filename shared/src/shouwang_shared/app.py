"""The service runtime and app factory: one shape for every service.

`create_service_app` builds a FastAPI app whose lifespan starts a `Runtime`: it connects to the
database (migrating it) and to Kafka (ensuring topics) in the background, retrying with a clear
log line while either is away, then starts the outbox relay and the consumers. `/healthz` answers
while the process lives; `/readyz` only once the database, the broker, the relay and the
consumers are all working.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import asyncpg
from aiokafka import AIOKafkaProducer
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shouwang_shared.auth import TokenVerifier
from shouwang_shared.config import ServiceSettings
from shouwang_shared.db import StatementPool, is_transient_db_error, make_engine, make_session_factory, ping
from shouwang_shared.errors import AppError
from shouwang_shared.inbox import BatchEventHandler, ConsumerRunner, EventHandler, HandlerKey
from shouwang_shared.kafka import make_producer
from shouwang_shared.logs import (
    CORRELATION_HEADER,
    configure_logging,
    current_correlation_id,
    reset_correlation_id,
    set_correlation_id,
)
from shouwang_shared.metrics import HTTP_LATENCY, READY, watch_gc_pauses, watch_loop_lag
from shouwang_shared.migrations import migrate
from shouwang_shared.outbox import OutboxRelay
from shouwang_shared.pii import UnknownKeyVersion
from shouwang_shared.topics import CATALOG, ensure_topics
from shouwang_shared.validation_text import chinese_reason

log = logging.getLogger(__name__)


@dataclass
class ConsumerSpec:
    """A consumer group of the service: its name, topics and a handler per (topic, event type) — `route(Model)`."""

    name: str
    topics: list[str]
    handlers: dict[HandlerKey, EventHandler | BatchEventHandler]
    max_records: int = 500


@dataclass
class Runtime:
    """Everything a running service holds: database, producer, relay, consumers, token verifier."""

    settings: ServiceSettings
    migrations_dir: Path | None = None
    consumer_specs: Sequence[ConsumerSpec] = ()
    engine: AsyncEngine = field(init=False)
    sessions: async_sessionmaker[AsyncSession] = field(init=False)
    statements: StatementPool = field(init=False)
    verifier: TokenVerifier = field(init=False)
    producer: AIOKafkaProducer | None = None
    relay: OutboxRelay | None = None
    relay_statements: StatementPool | None = None
    _relay_thread: threading.Thread | None = None
    _relay_stopping: bool = False
    runners: list[ConsumerRunner] = field(default_factory=list)
    db_ready: bool = False
    kafka_ready: bool = False
    extras: dict[str, Any] = field(default_factory=dict)
    _tasks: list[asyncio.Task] = field(default_factory=list)
    _loop_lag: asyncio.Task | None = None
    on_ready: list[Callable[[Runtime], Any]] = field(default_factory=list)
    _last_failing: str = ""
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.engine = make_engine(self.settings.database_url, pool_size=self.settings.db_pool_size)
        self.sessions = make_session_factory(self.engine)
        self.statements = StatementPool(self.settings.database_url, max_size=self.settings.db_pool_size)
        self.verifier = TokenVerifier.from_json(
            self.settings.jwt_public_keys, issuer=self.settings.jwt_issuer, audience=self.settings.jwt_audience
        )

    @property
    def name(self) -> str:
        return self.settings.service_name

    async def start(self) -> None:
        """Begin connecting in the background; the HTTP edge serves meanwhile."""
        watch_gc_pauses(self.name)
        self._loop_lag = asyncio.create_task(watch_loop_lag(self.name), name=f"{self.name}-loop-lag")
        self.spawn(self._bootstrap(), name="bootstrap")

    def spawn(self, work: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task:
        """Run `work` in the background for the life of the runtime; `stop` lets it finish briefly, then cancels it."""
        task = asyncio.create_task(work, name=f"{self.name}-{name}")
        self._tasks.append(task)
        return task

    def every(self, interval_s: float, sweep: Callable[[], Awaitable[Any]], *, name: str) -> asyncio.Task:
        """Run `sweep()` every `interval_s` once the database is migrated, until `stop`; a failed round is logged and the next retries."""
        return self.spawn(self._sweep_every(interval_s, sweep, name), name=name)

    async def _sweep_every(self, interval_s: float, sweep: Callable[[], Awaitable[Any]], name: str) -> None:
        while True:
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=interval_s)
                return
            except TimeoutError:
                pass
            if not self.db_ready:
                continue
            try:
                await sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the next round retries; the failure is logged
                log.warning("%s %s failed, retrying next round: %s: %s", self.name, name, type(exc).__name__, exc)

    async def _bootstrap(self) -> None:
        s = self.settings
        await self._retry_until(
            lambda: migrate(self.engine, self.migrations_dir),
            f"database unreachable at {_safe_url(s.database_url)}",
        )
        await self._retry_until(self.statements.start, f"database unreachable at {_safe_url(s.database_url)}")
        self.db_ready = True
        await self._retry_until(
            lambda: ensure_topics(s.kafka_bootstrap_servers, CATALOG, prefix=s.topic_prefix),
            f"Kafka broker unreachable at {s.kafka_bootstrap_servers}",
        )
        self.producer = make_producer(s.kafka_bootstrap_servers, linger_ms=s.producer_linger_ms, client_id=self.name)
        await self._retry_until(self.producer.start, f"Kafka producer cannot connect to {s.kafka_bootstrap_servers}")
        self.kafka_ready = True
        if s.run_relay and s.relay_in_thread:
            self._relay_thread = threading.Thread(target=asyncio.run, args=(self._relay_in_thread(),), name=f"{self.name}-relay", daemon=True)
            self._relay_thread.start()
        elif s.run_relay:
            # The relay's own two connections (a pick while the previous batch is marked sent): on the shared pool a
            # relay queued behind the requests for a connection, and rows were picked seconds after their commit.
            self.relay_statements = StatementPool(s.database_url, max_size=2, min_size=2)
            await self._retry_until(self.relay_statements.start, f"database unreachable at {_safe_url(s.database_url)}")
            self.relay = self._outbox_relay(self.engine, self.producer, self.relay_statements)
            self.spawn(self.relay.run(), name="relay")
        if s.run_consumers:
            for spec in self.consumer_specs:
                runner = ConsumerRunner(
                    name=spec.name, topics=spec.topics, handlers=spec.handlers, sessions=self.sessions,
                    producer=self.producer, bootstrap_servers=s.kafka_bootstrap_servers, service=self.name,
                    topic_prefix=s.topic_prefix, fetch_max_wait_ms=s.consumer_fetch_max_wait_ms,
                    quiet_fetch_max_wait_ms=s.consumer_quiet_fetch_max_wait_ms, busy_records_per_s=s.consumer_busy_records_per_s,
                    max_records=spec.max_records,
                )
                self.runners.append(runner)
                self.spawn(runner.run(), name=spec.name)
        # What is loaded by now lives as long as the process: kept out of the cyclic collector's sight, a full
        # collection no longer pauses requests for tens of milliseconds (seen as the registration and intake p99).
        gc.freeze()
        for hook in self.on_ready:
            result = hook(self)
            if asyncio.iscoroutine(result):
                await result
        log.info("%s ready: database and Kafka connected", self.name)

    async def _retry_until(self, attempt: Callable[[], Any], what: str) -> None:
        backoff = 0.5
        while True:
            try:
                await attempt()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - startup keeps trying, loudly
                log.error("%s: %s (%s); retrying in %.1fs", self.name, what, f"{type(exc).__name__}: {exc}"[:300], backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def readiness(self) -> dict[str, Any]:
        """Which checks pass, for `/readyz`: a plain status each; what went wrong is logged, never answered."""
        db_ok = self.db_ready and await ping(self.engine)
        checks = {
            "database": db_ok,
            "kafka": self.kafka_ready,
            "relay": (self.relay.healthy if self.relay else not self.settings.run_relay),
            "consumers": all(r.healthy for r in self.runners) if self.runners else True,
        }
        problems = {}
        if self.relay and self.relay.last_error:
            problems["relay"] = self.relay.last_error
        for r in self.runners:
            if r.last_error:
                problems[f"consumer:{r.name}"] = r.last_error
        ready = all(checks.values())
        READY.labels(self.name).set(1 if ready else 0)
        failing = "" if ready else "; ".join(
            [f"{check}: {problems.get(check, 'failing')}" for check, ok in checks.items() if not ok]
            + [f"{where}: {error}" for where, error in problems.items() if where not in checks])
        if failing != self._last_failing:  # once per change, not on every probe
            self._last_failing = failing
            if failing:
                log.warning("%s not ready: %s", self.name, failing)
        return {"ready": ready, "checks": checks}

    def _outbox_relay(self, engine: AsyncEngine, producer: AIOKafkaProducer, statements: StatementPool) -> OutboxRelay:
        s = self.settings
        return OutboxRelay(
            engine=engine, producer=producer, bootstrap_servers=s.kafka_bootstrap_servers,
            service=self.name, topic_prefix=s.topic_prefix, batch_size=s.outbox_batch_size,
            poll_interval_s=s.outbox_poll_interval_s, idle_poll_interval_s=s.outbox_idle_poll_interval_s,
            statements=statements,
        )

    async def _relay_in_thread(self) -> None:
        """The relay thread's loop: its own engine (shard locks, housekeeping), two pooled connections and producer, so
        the requests and consumers of the service's loop never delay a pick; restarted after a failure until `stop`."""
        s = self.settings
        while not self._relay_stopping:
            engine = make_engine(s.database_url, pool_size=2)
            statements = StatementPool(s.database_url, max_size=2, min_size=2)
            producer = make_producer(s.kafka_bootstrap_servers, linger_ms=s.producer_linger_ms, client_id=f"{self.name}-relay")
            try:
                await statements.start()
                await producer.start()
                self.relay = self._outbox_relay(engine, producer, statements)
                if self._relay_stopping:
                    return
                await self.relay.run()
            except Exception as exc:  # noqa: BLE001 - the database or broker went away while starting: try again
                log.warning("%s outbox relay could not start, retrying: %s: %s", self.name, type(exc).__name__, exc)
                await asyncio.sleep(1)
            finally:
                for closing in (producer.stop, statements.close, engine.dispose):
                    try:
                        await closing()
                    except Exception:  # noqa: BLE001 - already gone
                        pass

    async def stop(self) -> None:
        """Finish in-flight work, commit offsets, close connections."""
        self._stopping.set()
        if self._loop_lag is not None:
            self._loop_lag.cancel()
        self._relay_stopping = True
        if self.relay:
            self.relay.stop()
        for runner in self.runners:
            runner.stop()
        running = [task for task in self._tasks if not task.done()]
        if running:  # together, not one after another: three idle loops cost 9 s at every stop
            await asyncio.wait(running, timeout=3)
        for task in self._tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.producer is not None:
            try:
                await self.producer.stop()
            except Exception:  # noqa: BLE001 - the broker may be gone
                pass
        await self.statements.close()
        if self.relay_statements is not None:
            await self.relay_statements.close()
        if self._relay_thread is not None:
            await asyncio.to_thread(self._relay_thread.join, 5)
        await self.engine.dispose()


def _safe_url(url: str) -> str:
    """The database URL without its password, for logs."""
    if "@" not in url:
        return url
    head, tail = url.rsplit("@", 1)
    scheme, _, creds = head.partition("://")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}@{tail}"


async def get_runtime(request: Request) -> Runtime:
    """FastAPI dependency: the service runtime."""
    return request.app.state.runtime


async def get_sessions(request: Request) -> async_sessionmaker[AsyncSession]:
    """FastAPI dependency: the session factory; a service function opens its own transaction with it."""
    return request.app.state.runtime.sessions


async def get_statements(request: Request) -> StatementPool:
    """FastAPI dependency: the pool for one-statement hot paths."""
    return request.app.state.runtime.statements


Sessions = Annotated[async_sessionmaker[AsyncSession], Depends(get_sessions)]
Statements = Annotated[StatementPool, Depends(get_statements)]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def _field_of(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"


def _unstorable_value(request: Request, exc: BaseException) -> JSONResponse:
    """A 422 for a value PostgreSQL cannot take (a NUL character, an out-of-range number), naming the parameter when one holds it."""
    field = next((f"query.{name}" for name, value in request.query_params.multi_items() if "\x00" in value), None)
    field = field or next((name for name, value in request.path_params.items() if "\x00" in str(value)), "body")
    return JSONResponse(
        {"detail": {"code": "invalid", "message": f"无法保存的值 (a value the database cannot store): {str(exc)[:200]}", "field": field}},
        status_code=422,
    )


def _data_error(exc: BaseException) -> asyncpg.exceptions.DataError | None:
    """The asyncpg DataError behind a SQLAlchemy error, if that is what it is."""
    while exc is not None:
        if isinstance(exc, asyncpg.exceptions.DataError):
            return exc
        exc = exc.__cause__
    return None


def install_error_handlers(app: FastAPI) -> None:
    """Every error becomes a clear JSON 4xx naming the field, or a 503 naming the missing dependency."""

    @app.exception_handler(AppError)
    async def _app_error(_: Request, exc: AppError) -> JSONResponse:
        headers = {}
        if getattr(exc, "retry_after_s", None) is not None:
            headers["Retry-After"] = str(exc.retry_after_s)
        return JSONResponse(exc.to_dict(), status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": "body" if e.get("type") == "json_invalid" else _field_of(e.get("loc", ())),
             "message": chinese_reason(e), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"field": "body", "message": "请求无效"}
        return JSONResponse(
            {"detail": {"code": "invalid", "message": f"{first['field']}: {first['message']}", "field": first["field"], "errors": errors}},
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, dict) else {"code": "http_error", "message": str(exc.detail)}
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(SQLAlchemyError)
    async def _db(request: Request, exc: SQLAlchemyError) -> JSONResponse:
        if is_transient_db_error(exc) or isinstance(exc, DBAPIError) and "connection" in str(exc).lower():
            return JSONResponse({"detail": {"code": "unavailable", "message": "database unavailable"}}, status_code=503, headers={"Retry-After": "2"})
        if (bad := _data_error(exc)) is not None:
            return _unstorable_value(request, bad)
        log.exception("database error")
        return JSONResponse({"detail": {"code": "conflict", "message": "the request conflicts with stored data"}}, status_code=409)

    @app.exception_handler(asyncpg.exceptions.DataError)
    async def _bad_value(request: Request, exc: asyncpg.exceptions.DataError) -> JSONResponse:
        return _unstorable_value(request, exc)  # raw asyncpg work (raw_connection)

    @app.exception_handler(asyncpg.exceptions.IntegrityConstraintViolationError)
    async def _integrity(_: Request, exc: asyncpg.exceptions.IntegrityConstraintViolationError) -> JSONResponse:
        return JSONResponse({"detail": {"code": "conflict", "message": "the request conflicts with stored data"}}, status_code=409)

    @app.exception_handler(UnknownKeyVersion)
    async def _key_missing(_: Request, exc: UnknownKeyVersion) -> JSONResponse:
        log.error("personal data under a key this process does not hold: %s", exc)
        return JSONResponse({"detail": {"code": "pii_key_unavailable", "message": f"数据所用密钥未配置（{exc.short}）"}}, status_code=503)

    @app.exception_handler(OSError)
    async def _os(_: Request, exc: OSError) -> JSONResponse:
        return JSONResponse({"detail": {"code": "unavailable", "message": f"dependency unavailable: {type(exc).__name__}"}}, status_code=503, headers={"Retry-After": "2"})


class ObservabilityMiddleware:
    """Pure ASGI middleware: binds the correlation id, returns it in a header, observes request latency."""

    _header = CORRELATION_HEADER.lower().encode()

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = None
        for name, value in scope["headers"]:
            if name == self._header:
                given = value.decode("latin-1")
                break
        token = set_correlation_id(given)
        correlation_id = (current_correlation_id() or "").encode("latin-1")
        started = time.perf_counter()
        status = 500
        header = self._header

        async def send_with_correlation(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != header]
                headers.append((header, correlation_id))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_correlation)
        finally:
            template = getattr(scope.get("route"), "path", "unmatched")
            HTTP_LATENCY.labels(self.service, scope["method"], template, str(status)).observe(time.perf_counter() - started)
            reset_correlation_id(token)


def _exception_handler_for(app: FastAPI, exc: Exception) -> Callable | None:
    """The app's exception handler for `exc` (most specific class first), as Starlette looks it up."""
    for cls in type(exc).__mro__:
        if cls in app.exception_handlers:
            return app.exception_handlers[cls]
    return None


async def render_with_app_handlers(request: Request, exc: Exception) -> Response:
    """`exc` as the app's own handler renders it (for paths that bypass FastAPI's routing); re-raised when unhandled."""
    handler = _exception_handler_for(request.scope["app"], exc)
    if handler is None:
        raise exc
    response = handler(request, exc)
    return await response if inspect.isawaitable(response) else response


@dataclass(frozen=True)
class HotRoute:
    """One exact hot read: method, path (no parameters), the query strings it takes, and its handler."""

    method: str
    path: str
    handler: Callable[[Request], Awaitable[Response]]
    queries: frozenset[bytes] = frozenset({b""})


class HotRoutes:
    """Pure ASGI middleware: answers a few exact hot reads without FastAPI's routing and dependency solving.

    Innermost of the app's middleware (inside the correlation id and metrics; `scope["route"]` is the hot route,
    so the latency histogram keeps the route's label). A request whose method, path and whole query string match
    an entry is answered by its handler; anything else goes on to FastAPI unchanged, where the same path has its
    ordinary route (and the OpenAPI document). Errors are rendered by the app's own exception handlers, so a
    refused call looks exactly as on the slow path.
    """

    def __init__(self, app: ASGIApp, *, routes: Sequence[HotRoute]) -> None:
        self.app = app
        self.routes = {(r.method, r.path): r for r in routes}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.get((scope.get("method"), scope.get("path"))) if scope["type"] == "http" else None
        if route is None or scope.get("query_string", b"") not in route.queries or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        scope["route"] = route
        request = Request(scope, receive)
        try:
            response = await route.handler(request)
        except ClientDisconnect:  # the caller went away mid-request: nobody to answer, nothing went wrong here
            return
        except Exception as exc:  # noqa: BLE001 - rendered by the app's handler for it, or re-raised as on the slow path
            response = await render_with_app_handlers(request, exc)
        await response(scope, receive, send)


def install_observability(app: FastAPI, service: str) -> None:
    """Correlation id in and out, request latency histogram, health, readiness and metrics routes."""
    app.add_middleware(ObservabilityMiddleware, service=service)

    ops = APIRouter(tags=["operations"])

    @ops.get("/healthz", summary="Liveness: the process is running")
    async def healthz() -> dict:
        return {"status": "ok", "service": service}

    @ops.get("/readyz", summary="Readiness: database, broker, relay and consumers all work")
    async def readyz(request: Request) -> JSONResponse:
        report = await request.app.state.runtime.readiness()
        return JSONResponse(report, status_code=200 if report["ready"] else 503)

    @ops.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.include_router(ops)


SWAGGER_UI = Path(__file__).parent / "swagger_ui"  # vendored from npm by tools/console_assets.py


def install_offline_docs(app: FastAPI) -> None:
    """Serve Swagger UI at /docs from the service's own files: the county may run with no internet."""
    app.mount("/docs/assets", StaticFiles(directory=SWAGGER_UI), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} — API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js", swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon-32x32.png",
        )


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str | None = None,
    routers: Sequence[APIRouter] = (),
    migrations_dir: Path | None = None,
    consumers: Sequence[ConsumerSpec] = (),
    on_start: Sequence[Callable[[Runtime], Any]] = (),
    on_ready: Sequence[Callable[[Runtime], Any]] = (),
    configure_logs: bool = True,
) -> FastAPI:
    """A FastAPI app with the platform runtime in its lifespan and the standard edges installed.

    The title defaults to "Shouwang <service>"; `on_start` hooks run as the runtime starts (before the database is
    reached: where `Runtime.every` sweeps are begun), `on_ready` hooks once the database and Kafka are connected.
    """
    if configure_logs:
        configure_logging(settings.service_name, settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = Runtime(settings=settings, migrations_dir=migrations_dir, consumer_specs=list(consumers))
        runtime.on_ready.extend(on_ready)
        app.state.runtime = runtime
        await runtime.start()
        for hook in on_start:
            hook(runtime)
        try:
            yield
        finally:
            await runtime.stop()

    # Metrics are Prometheus (`install_observability`); FastAPI's built-in OpenTelemetry would otherwise ask on
    # every request whether a tracer or meter provider is configured.
    app = FastAPI(title=title or f"Shouwang {settings.service_name}", lifespan=lifespan, telemetry={"tracing": False, "metrics": False, "logs": False},
                  docs_url=None, redoc_url=None)
    install_offline_docs(app)
    install_error_handlers(app)
    install_observability(app, settings.service_name)
    for router in routers:
        app.include_router(router)
    return app
