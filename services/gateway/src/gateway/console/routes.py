"""The console's pages: thin routes that check the session (and CSRF on writes) and call one view each."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import time
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path
from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, FastAPI, Header, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sse_starlette import EventSourceResponse

from shouwang_shared.errors import AppError

from gateway import accounts
from gateway.config import GatewaySettings
from gateway.console import exports, orgs, views
from gateway.console.session import (
    CSRF_FIELD,
    ConsoleUser,
    LoginRequired,
    check_csrf,
    console_user,
    csrf_of,
    end_session,
    keep_session,
)
from gateway.console.verify import verify_router
from gateway.context import GatewayContext
from gateway.security import Context, caller_ip, enforce_limit

HERE = Path(__file__).parent
BOARD_PUSH_EVERY_S = 2.0  # the board's stream asks dispatch for the fill rate this often while a page is open


def install_console(app: FastAPI, settings: GatewaySettings) -> None:
    """Serve the console under /console/: its pages, its static files, and the sign-in redirect."""
    app.include_router(console_router(settings))
    app.include_router(verify_router())
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")

    async def to_sign_in(request: Request, _: LoginRequired) -> Response:
        if request.headers.get("hx-request"):
            return Response(status_code=200, headers={"HX-Redirect": "/console/login"})
        return RedirectResponse("/console/login", status_code=303)

    app.add_exception_handler(LoginRequired, to_sign_in)


def console_router(settings: GatewaySettings) -> APIRouter:
    """The console's routes (left out of the API's OpenAPI document)."""
    router = APIRouter(prefix="/console", include_in_schema=False)
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals.update(views.LABELS)  # the Chinese names of every code a page shows
    templates.env.filters["reason"] = views.reason_text
    templates.env.filters["local"] = views.local_time
    templates.env.filters["org_name"] = orgs.org_name
    templates.env.globals.update(form_refusal=views.form_refusal, project_inputs=views.PROJECT_INPUTS, operation_inputs=views.OPERATION_INPUTS)
    secure = not settings.dev_mode

    def page(request: Request, name: str, *, user: ConsoleUser | None, status: int = 200, **context) -> HTMLResponse:
        csrf = user.csrf if user else csrf_of(request)
        response = templates.TemplateResponse(request, name, {"user": user, "csrf": csrf, **context}, status_code=status)
        return keep_session(response, csrf=csrf, tokens=user.renewed if user else None, secure=secure)

    def no_such_action(request: Request, user: ConsoleUser) -> HTMLResponse:
        return page(request, "_message.html", user=user, status=404, message="没有这个操作")

    def shown(request: Request, user: ConsoleUser, answer: views.ServiceAnswer, name: str, **context) -> HTMLResponse:
        """The page `name` when the service answered, else the error page with its refusal."""
        if not answer.ok:
            return page(request, "error.html", user=user, status=answer.status, answer=answer)
        return page(request, name, user=user, **context)

    async def detail(request: Request, ctx: GatewayContext, fetch: Callable[..., Awaitable[views.ServiceAnswer]], item_id: str, name: str, *,
                     named: str) -> HTMLResponse:
        """The page `name` of one thing `fetch` gets, given to the template as `named`, or the service's refusal."""
        user = await console_user(request, ctx)
        found = await fetch(ctx, user, item_id)
        return shown(request, user, found, name, **{named: found.data})

    async def act(request: Request, ctx: GatewayContext, action: str, allowed: Collection[str],
                  perform: Callable[[ConsoleUser, dict], Awaitable[views.ServiceAnswer]], *, fields=None) -> Response:
        """An htmx action: the writer checked, an unknown `action` refused, else what `perform(user, form)` answered."""
        user = await writer(request, ctx)
        if action not in allowed:
            return no_such_action(request, user)
        return acted(request, user, await perform(user, await (fields or _fields)(request)))

    async def create(request: Request, ctx: GatewayContext, make: Callable[..., Awaitable[views.ServiceAnswer]], to: Callable[[dict], str],
                     form_again: Callable[[ConsoleUser, dict, views.ServiceAnswer], Awaitable[HTMLResponse]]) -> Response:
        """A create form posted: the writer checked, `make` asked; on to the address `to` gives when made, else the form again."""
        user = await writer(request, ctx)
        form = await _fields(request)
        created = await make(ctx, user, form)
        if created.ok:
            return keep_session(RedirectResponse(to(created.data), status_code=303), csrf=user.csrf, tokens=user.renewed, secure=secure)
        return await form_again(user, form, created)

    def acted(request: Request, user: ConsoleUser, answer: views.ServiceAnswer) -> Response:
        """After an htmx action: the page reloads when it was done, else the service's refusal where the action was."""
        if answer.ok:
            return Response(status_code=204, headers={"HX-Refresh": "true"})
        return page(request, "_message.html", user=user, status=answer.status, message=answer.message)

    @router.get("/")
    async def home() -> RedirectResponse:
        return RedirectResponse("/console/operations", status_code=303)

    @router.get("/login")
    async def login_page(request: Request) -> HTMLResponse:
        return page(request, "login.html", user=None)

    @router.post("/login")
    async def login(request: Request, ctx: Context) -> Response:
        await check_csrf(request)
        form = await request.form()
        username, password = str(form.get("username", "")).strip(), str(form.get("password", ""))
        try:
            if not username or not password:
                raise AppError("请输入用户名和密码", field="username" if not username else "password", status_code=422)
            await enforce_limit(ctx, ctx.limits.login, f"ip:{caller_ip(request)}")
            await enforce_limit(ctx, ctx.limits.login, f"user:{username}")
            tokens = await accounts.login_staff(
                sessions=request.app.state.runtime.sessions, policy=ctx.require_policy(), upstreams=ctx.upstreams,
                username=username, password=password,
            )
        except AppError as exc:
            return page(request, "login.html", user=None, status=exc.status_code, error=exc.message, field=exc.field, username=username)
        response = RedirectResponse("/console/operations", status_code=303)
        return keep_session(response, csrf=csrf_of(request), tokens=tokens, secure=secure)

    @router.post("/logout")
    async def logout(request: Request, ctx: Context) -> Response:
        user = await writer(request, ctx)
        session_id = accounts.principal_session_id(user.principal)
        if session_id:
            await accounts.revoke_session(sessions=request.app.state.runtime.sessions, session_id=session_id, reason="console logout")
            ctx.session_cache.put(session_id, False)
        return end_session(RedirectResponse("/console/login", status_code=303), secure=secure)

    @router.get("/operations")
    async def operations_page(request: Request, ctx: Context, status: str | None = None) -> HTMLResponse:
        user = await console_user(request, ctx)
        listed, units = await asyncio.gather(views.list_operations(ctx, user, status or None), orgs.org_choices(ctx, user))
        return page(request, "operations.html", user=user, listed=listed, status_filter=status or "", form={}, created=None, org_units=units)

    @router.post("/operations")
    async def create_operation(request: Request, ctx: Context) -> Response:
        async def form_again(user: ConsoleUser, form: dict, created: views.ServiceAnswer) -> HTMLResponse:
            listed, units = await asyncio.gather(views.list_operations(ctx, user, None), orgs.org_choices(ctx, user))
            return page(request, "operations.html", user=user, status=created.status, listed=listed, status_filter="", form=form,
                        created=created, org_units=units)

        return await create(request, ctx, views.create_operation, lambda made: f"/console/operations/{made['id']}", form_again)

    @router.get("/operations/{operation_id}")
    async def operation_page(operation_id: str, request: Request, ctx: Context, offset: int = 0) -> HTMLResponse:
        user = await console_user(request, ctx)
        filters = _filters(request, views.OFFER_FILTERS) | {"operation_id": operation_id}  # the offers' status filter stays in the URL
        status = filters["offer_status"] if filters["offer_status"] in views.ASSIGNMENT_STATUS else ""
        operation, (live, _), offers = await asyncio.gather(
            views.get_operation(ctx, user, operation_id), views.board(ctx, user, operation_id),
            views.offers_page(ctx, user, operation_id, status or None, max(0, offset)),
        )
        return shown(request, user, operation, "operation.html", operation=operation.data, board=live, imported=None, offers=offers,
                     offer_status=status, offers_query=_query({"operation_id": operation_id, "offer_status": status}),
                     page_query=_query({"offer_status": status}))

    @router.post("/operations/{operation_id}/offers/{action}")
    async def act_on_offers(operation_id: str, action: str, request: Request, ctx: Context) -> Response:
        user = await writer(request, ctx)
        if action not in views.OFFER_ACTIONS:
            return no_such_action(request, user)
        answer = await views.act_on_offers(ctx, user, operation_id, action, await _multi_fields(request))
        summary = views.reoffer_summary(answer)
        if summary:  # some slots found nobody: say so where the action was instead of reloading
            return page(request, "_message.html", user=user, message=summary)
        return acted(request, user, answer)

    @router.post("/operations/{operation_id}/posts")
    async def import_posts(operation_id: str, request: Request, ctx: Context) -> HTMLResponse:
        user = await writer(request, ctx)
        upload = (await request.form()).get("file")
        content = await upload.read() if hasattr(upload, "read") else b""
        imported = await views.import_posts(ctx, user, operation_id, content)
        return page(request, "_import_result.html", user=user, status=200 if imported.ok else imported.status, imported=imported)

    @router.post("/operations/{operation_id}/{action}")
    async def change_operation(operation_id: str, action: str, request: Request, ctx: Context) -> Response:
        return await act(request, ctx, action, ("activate", "close"), lambda user, _: views.change_operation(ctx, user, operation_id, action))

    @router.get("/triage")
    async def triage_page(request: Request, ctx: Context) -> HTMLResponse:
        user = await console_user(request, ctx)
        filters = _filters(request, views.TRIAGE_FILTERS)  # kept in the URL
        queue = await views.triage_queue(ctx, user, filters)
        return page(request, "triage.html", user=user, queue=queue, filters=filters, query=_query(filters))

    @router.post("/triage/{action}")
    async def bulk_cases(action: str, request: Request, ctx: Context) -> Response:
        return await act(request, ctx, action, views.TRIAGE_BULK, lambda user, form: views.bulk_cases(ctx, user, action, form), fields=_multi_fields)

    @router.get("/cases/{case_id}")
    async def case_page(case_id: str, request: Request, ctx: Context) -> HTMLResponse:
        user = await console_user(request, ctx)
        case = await views.case_detail(ctx, user, case_id)
        if not case.ok:
            return page(request, "error.html", user=user, status=case.status, answer=case)
        open_case = case.data["status"] in ("new", "triaged", "verified")
        draft, similar = await asyncio.gather(
            views.police_draft(ctx, user, case_id) if case.data["status"] == "verified" else _nothing(),
            views.similar_cases(ctx, user, case_id) if open_case else _nothing(),
        )
        return page(request, "case.html", user=user, case=case.data, draft=draft, similar=similar)

    @router.post("/cases/{case_id}/{action}")
    async def change_case(case_id: str, action: str, request: Request, ctx: Context) -> Response:
        return await act(request, ctx, action, views.CASE_ACTIONS, lambda user, form: views.case_action(ctx, user, case_id, action, form), fields=_multi_fields)

    @router.get("/volunteers")
    async def roster_page(request: Request, ctx: Context, offset: int = 0) -> HTMLResponse:
        user = await console_user(request, ctx)
        filters = _filters(request, views.ROSTER_FILTERS)  # kept in the URL
        (listed, teams), units = await asyncio.gather(views.roster(ctx, user, filters, offset=max(0, offset)), orgs.org_choices(ctx, user))
        return page(request, "roster.html", user=user, listed=listed, teams=teams.data if teams.ok else [], filters=filters, org_units=units,
                    unit=filters["unit"], query=_query(filters), offset=max(0, offset),
                    page_size=views.ROSTER_PAGE)

    @router.get("/export/{name}.csv")
    async def export_csv(name: str, request: Request, ctx: Context) -> Response:
        """Any list page as CSV, with the filters its address carries (the same query string as the page)."""
        user = await console_user(request, ctx)
        export = exports.EXPORTS.get(name)
        if export is None:
            return page(request, "_message.html", user=user, status=404, message="没有这个列表")
        listed = await export.fetch(ctx, user, _filters(request, export.filters))
        if not listed.ok:
            return page(request, "error.html", user=user, status=listed.status, answer=listed)
        return keep_session(csv_download(export.filename, exports.export_rows(export, listed.data)), csrf=user.csrf, tokens=user.renewed,
                            secure=secure)

    @router.get("/volunteers/{volunteer_id}")
    async def volunteer_page(volunteer_id: str, request: Request, ctx: Context) -> HTMLResponse:
        user = await console_user(request, ctx)
        profile, history, balances, star = await views.volunteer_profile(ctx, user, volunteer_id)
        return shown(request, user, profile, "volunteer.html", v=profile.data, history=history.data if history.ok else [],
                     balances=balances, star=star)

    @router.post("/volunteers/{volunteer_id}/reveal")
    async def reveal_identity(volunteer_id: str, request: Request, ctx: Context) -> HTMLResponse:
        user = await writer(request, ctx)
        form = await request.form()
        revealed = await views.reveal(ctx, user, volunteer_id, str(form.get("reason", "")), [str(f) for f in form.getlist("fields")])
        return page(request, "_revealed.html", user=user, status=200 if revealed.ok else revealed.status, revealed=revealed)

    @router.get("/hierarchy")
    async def hierarchy_page(request: Request, ctx: Context, unit: str | None = None) -> HTMLResponse:
        user = await console_user(request, ctx)
        root = unit or views.home_unit(user)
        if root is None:
            return page(request, "_message.html", user=user, status=422, message="没有管辖范围，请在地址中指定 ?unit=")
        tree = await views.hierarchy(ctx, user, root)
        if not tree["counts"].ok:
            return page(request, "error.html", user=user, status=tree["counts"].status, answer=tree["counts"])
        return page(request, "hierarchy.html", user=user, unit=root, **tree)

    @router.get("/community")
    async def community_page(request: Request, ctx: Context, need_status: str | None = None) -> HTMLResponse:
        user = await console_user(request, ctx)
        lists = await views.community(ctx, user, need_status=need_status or None)
        return page(request, "community.html", user=user, need_filter=need_status or "", **lists)

    @router.post("/community/{action}/{target}")
    async def change_community(action: str, target: str, request: Request, ctx: Context) -> Response:
        return await act(request, ctx, action, ("need-status", "publish", "trend-drafts"), lambda user, form: views.community_action(ctx, user, action, target, form))

    @router.get("/disputes/{dispute_id}")
    async def dispute_page(dispute_id: str, request: Request, ctx: Context) -> HTMLResponse:
        return await detail(request, ctx, views.dispute, dispute_id, "dispute.html", named="d")

    @router.post("/disputes/{dispute_id}/{action}")
    async def change_dispute(dispute_id: str, action: str, request: Request, ctx: Context) -> Response:
        return await act(request, ctx, action, ("mediator", "sessions", "outcome"), lambda user, form: views.dispute_action(ctx, user, dispute_id, action, form))

    @router.get("/rewards")
    async def rewards_page(request: Request, ctx: Context, period: str | None = None, unit: str = "points") -> HTMLResponse:
        user = await console_user(request, ctx)
        period = period or views.this_month()
        unit = unit if unit in views.LEADER_UNIT else "points"
        desk = _filters(request, views.DESK_FILTERS)
        desk["redemption_status"] = request.query_params.get("redemption_status", "requested").strip()  # the station's to-do
        overview, redemptions, pending, units = await asyncio.gather(
            views.rewards_overview(ctx, user, period=period, unit=unit), views.scope_redemptions(ctx, user, desk),
            views.pending_tip_points(ctx, user, desk), orgs.org_choices(ctx, user),
        )
        return page(request, "rewards.html", user=user, period=period, unit=unit, desk=desk, desk_query=_query(desk),
                    redemptions=redemptions, pending=pending, org_units=units, org_names=orgs.unit_names(units), **overview)

    @router.post("/redemptions/{action}")
    async def decide_redemptions(action: str, request: Request, ctx: Context) -> Response:
        return await act(request, ctx, action, views.REDEMPTION_ACTIONS, lambda user, form: views.decide_redemptions(ctx, user, action, form), fields=_multi_fields)

    @router.get("/hours")
    async def hours_page(request: Request, ctx: Context) -> HTMLResponse:
        user = await console_user(request, ctx)
        return page(request, "hours.html", user=user, pending=await views.pending_hours(ctx, user))

    @router.post("/hours/{verdict}")
    async def decide_hours(verdict: str, request: Request, ctx: Context) -> Response:
        return await act(request, ctx, verdict, views.HOURS_VERDICTS, lambda user, form: views.decide_hours(ctx, user, verdict, form), fields=_multi_fields)

    @router.get("/projects")
    async def projects_page(request: Request, ctx: Context) -> HTMLResponse:
        user = await console_user(request, ctx)
        filters = _filters(request, ("kind",))
        listed, units = await asyncio.gather(views.list_projects(ctx, user, filters["kind"] or None), orgs.org_choices(ctx, user))
        return page(request, "projects.html", user=user, listed=listed, filters=filters, query=_query(filters), form={}, created=None,
                    org_units=units)

    @router.post("/projects")
    async def create_project(request: Request, ctx: Context) -> Response:
        async def form_again(user: ConsoleUser, form: dict, created: views.ServiceAnswer) -> HTMLResponse:
            listed, units = await asyncio.gather(views.list_projects(ctx, user, None), orgs.org_choices(ctx, user))
            return page(request, "projects.html", user=user, status=created.status, listed=listed, filters={"kind": ""}, query="",
                        form=form, created=created, org_units=units)

        return await create(request, ctx, views.create_project, lambda made: f"/console/projects/{made['id']}", form_again)

    @router.post("/projects/{project_id}/beneficiaries")
    async def add_beneficiary(project_id: str, request: Request, ctx: Context) -> Response:
        user = await writer(request, ctx)
        return acted(request, user, await views.add_beneficiary(ctx, user, project_id, await _fields(request)))

    @router.post("/projects/{project_id}/beneficiaries/{beneficiary_id}/remove")
    async def remove_beneficiary(project_id: str, beneficiary_id: str, request: Request, ctx: Context) -> Response:
        user = await writer(request, ctx)
        return acted(request, user, await views.remove_beneficiary(ctx, user, project_id, beneficiary_id))

    @router.post("/projects/{project_id}/{action}")
    async def edit_project(project_id: str, action: str, request: Request, ctx: Context) -> Response:
        return await act(request, ctx, action, views.PROJECT_EDITS, lambda user, form: views.edit_project(ctx, user, project_id, action, form))

    @router.get("/projects/{project_id}")
    async def project_page(project_id: str, request: Request, ctx: Context) -> HTMLResponse:
        user = await console_user(request, ctx)
        project, shifts, signups, beneficiaries = await views.project_detail(ctx, user, project_id)
        return shown(request, user, project, "project.html", p=project.data, shifts=shifts, signups=signups, beneficiaries=beneficiaries)

    @router.get("/projects/{project_id}/shifts/{shift_id}/qr")
    async def shift_qr_page(project_id: str, shift_id: str, request: Request, ctx: Context) -> HTMLResponse:
        user = await console_user(request, ctx)
        answer, svg, shift = await views.shift_qr(ctx, user, project_id, shift_id)
        if not svg:
            return page(request, "error.html", user=user, status=answer.status if not answer.ok else 404, answer=answer)
        return page(request, "shift_qr.html", user=user, p=answer.data, shift=shift, svg=svg)

    @router.get("/reports")
    async def report_page(
        request: Request, ctx: Context, unit: str | None = None, first: Annotated[str | None, Query(alias="from")] = None,
        last: Annotated[str | None, Query(alias="to")] = None,
    ) -> HTMLResponse:
        user = await console_user(request, ctx)
        params = views.report_params(unit, first, last)
        report, units = await asyncio.gather(views.county_report(ctx, user, params), orgs.org_choices(ctx, user))
        return page(request, "report.html", user=user, status=200 if report.ok else report.status, report=report, unit=unit or "", org_units=units,
                    first=first or "", last=last or "", query=urlencode(params))

    @router.get("/reports.csv")
    async def report_download(
        request: Request, ctx: Context, unit: str | None = None, first: Annotated[str | None, Query(alias="from")] = None,
        last: Annotated[str | None, Query(alias="to")] = None,
    ) -> Response:
        user = await console_user(request, ctx)
        answer, content = await views.report_csv(ctx, user, views.report_params(unit, first, last))
        if not answer.ok:
            return page(request, "error.html", user=user, status=answer.status, answer=answer)
        download = Response(content, media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote('统计报表.csv')}"})
        return keep_session(download, csrf=user.csrf, tokens=user.renewed, secure=secure)

    @router.get("/reports/operations/{operation_id}")
    async def operation_report_page(operation_id: str, request: Request, ctx: Context) -> HTMLResponse:
        return await detail(request, ctx, views.operation_report, operation_id, "report_operation.html", named="s")

    @router.get("/training")
    async def training_page(request: Request, ctx: Context, unit: str | None = None) -> HTMLResponse:
        user = await console_user(request, ctx)
        root = unit or views.home_unit(user) or ""
        (held, behind, units), choices = await asyncio.gather(views.training(ctx, user, root), orgs.org_choices(ctx, user))
        return page(request, "training.html", user=user, held=held, behind=behind, units=units, unit=root, org_units=choices, form={},
                    created=None)

    @router.post("/training")
    async def create_training(request: Request, ctx: Context) -> Response:
        async def form_again(user: ConsoleUser, form: dict, created: views.ServiceAnswer) -> HTMLResponse:
            (held, behind, units), choices = await asyncio.gather(
                views.training(ctx, user, form.get("org_unit_id") or views.home_unit(user) or ""), orgs.org_choices(ctx, user))
            return page(request, "training.html", user=user, status=created.status, held=held, behind=behind, units=units, org_units=choices,
                        unit=form.get("org_unit_id", ""), form=form, created=created)

        return await create(request, ctx, views.create_training, lambda _: "/console/training", form_again)

    @router.get("/training/{session_id}")
    async def training_session_page(session_id: str, request: Request, ctx: Context) -> HTMLResponse:
        user = await console_user(request, ctx)
        (held, people), units = await asyncio.gather(views.training_session(ctx, user, session_id), orgs.org_choices(ctx, user))
        return shown(request, user, held, "training_session.html", t=held.data, people=people, org_names=orgs.unit_names(units))

    @router.post("/training/{session_id}/attendance")
    async def record_attendance(session_id: str, request: Request, ctx: Context) -> Response:
        user = await writer(request, ctx)
        return acted(request, user, await views.record_attendance(ctx, user, session_id, await _multi_fields(request)))

    @router.get("/operations/{operation_id}/stream")
    async def board_stream(
        operation_id: str, request: Request, ctx: Context,
        last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    ) -> EventSourceResponse:
        """The board pushed as HTML whenever its figures change; a reconnect with the last id gets only news.

        The stream ends with an `expired` event when the access token does: the page reloads and renews it.
        """
        user = await console_user(request, ctx, renew=False)
        fragment = templates.get_template("_board.html")
        expires_at = float(user.principal.claims.get("exp", 0))

        async def events():
            sent = last_event_id
            while not await request.is_disconnected():
                if time.time() >= expires_at - BOARD_PUSH_EVERY_S:
                    yield {"event": "expired", "data": ""}
                    return
                live, answer = await views.board(ctx, user, operation_id)
                html = fragment.render(board=live, answer=answer)
                version = hashlib.sha256(html.encode()).hexdigest()[:16]
                if version != sent:
                    yield {"id": version, "event": "board", "data": html}
                    sent = version
                await asyncio.sleep(BOARD_PUSH_EVERY_S)

        return EventSourceResponse(events(), ping=15)

    return router


def csv_download(filename: str, rows: list[list[str]]) -> Response:
    """A CSV file (UTF-8 with a BOM, so spreadsheet programs read the Chinese right) offered for download."""
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return Response(("\ufeff" + out.getvalue()).encode(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}"})


async def writer(request: Request, ctx: GatewayContext) -> ConsoleUser:
    """The signed-in person making a write, once its CSRF token is checked."""
    await check_csrf(request)
    return await console_user(request, ctx)


def _filters(request: Request, names: tuple[str, ...]) -> dict[str, str]:
    """A list page's filters as the address gives them ('' when not set)."""
    return {key: request.query_params.get(key, "").strip() for key in names}


def _query(filters: dict[str, str]) -> str:
    """The filters that are set, as a query string for the page's links (CSV, next page)."""
    return urlencode({k: v for k, v in filters.items() if v})


async def _nothing() -> None:
    """Nothing to fetch (a page section that does not apply)."""
    return None


async def _multi_fields(request: Request) -> dict[str, list[str]]:
    """The submitted form's fields with every value (checkboxes), without the CSRF token."""
    form = await request.form()
    return {k: [str(v) for v in form.getlist(k)] for k in form.keys() if k != CSRF_FIELD}


async def _fields(request: Request) -> dict[str, str]:
    """The submitted form's fields, without the CSRF token (already checked)."""
    return {k: str(v) for k, v in (await request.form()).items() if k != CSRF_FIELD}
