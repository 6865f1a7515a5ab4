"""Server-rendered pages: sign in with a token, label items (keyboard shortcuts), admin overview.

Model text is untrusted: templates are rendered with autoescaping and never mark it safe.
Every form that changes state carries a CSRF token bound to the signed-in annotator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader
from pydantic import ValidationError

from redraft.feedback.admin import collect_stats
from redraft.feedback.api import AppState, State
from redraft.feedback.queue import (
    InvalidLabel,
    Judgement,
    progress,
    serve_next,
    submit_label,
)
from redraft.feedback.security import authenticate, csrf_token, csrf_valid
from redraft.feedback.store import Annotator

COOKIE = "redraft_feedback_token"
TEMPLATES = Jinja2Templates(
    env=Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True)
)

router = APIRouter(include_in_schema=False)


class PageError(Exception):
    """An error shown to the browser as an HTML page with this status."""

    def __init__(self, status_code: int, message: str):
        super().__init__(message)
        self.status_code = status_code


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(request, template, context, status_code=status_code)


def signed_in(state: AppState, request: Request) -> Annotator | None:
    with state.sessions() as session:
        return authenticate(session, request.cookies.get(COOKIE))


def require_signed_in(state: AppState, request: Request) -> Annotator:
    annotator = signed_in(state, request)
    if annotator is None:
        raise PageError(status.HTTP_401_UNAUTHORIZED, "Please sign in with your annotator token.")
    return annotator


async def checked_form(state: AppState, request: Request, annotator: Annotator) -> Any:
    form = await request.form()
    if not csrf_valid(state.secret, annotator, form.get("csrf")):
        raise PageError(status.HTTP_403_FORBIDDEN, "This form has expired or did not come from this site; reload the page.")
    return form


@router.get("/", response_class=HTMLResponse)
def home(request: Request, state: State) -> Response:
    if signed_in(state, request) is not None:
        return RedirectResponse("/label", status.HTTP_303_SEE_OTHER)
    return render(request, "signin.html")


@router.post("/signin")
async def sign_in(request: Request, state: State) -> Response:
    token = str((await request.form()).get("token", "")).strip()
    with state.sessions() as session:
        annotator = authenticate(session, token)
    if annotator is None:
        return render(request, "signin.html", status.HTTP_401_UNAUTHORIZED, error="Unknown token.")
    response = RedirectResponse("/admin" if annotator.is_admin else "/label", status.HTTP_303_SEE_OTHER)
    response.set_cookie(
        COOKIE, token, httponly=True, samesite="strict", secure=state.config.server.secure_cookies, max_age=30 * 86400
    )
    return response


@router.post("/signout")
async def sign_out(request: Request, state: State) -> Response:
    await checked_form(state, request, require_signed_in(state, request))
    response = RedirectResponse("/", status.HTTP_303_SEE_OTHER)
    response.delete_cookie(COOKIE)
    return response


@router.get("/label", response_class=HTMLResponse)
def label_page(request: Request, state: State) -> Response:
    annotator = signed_in(state, request)
    if annotator is None:
        return RedirectResponse("/", status.HTTP_303_SEE_OTHER)
    item = serve_next(state.sessions, annotator.id, state.config.queue.lease_seconds)
    with state.sessions() as session:
        done_and_left = progress(session, annotator.id)
    context = {"annotator": annotator, "progress": done_and_left, "csrf": csrf_token(state.secret, annotator)}
    if item is None:
        return render(request, "done.html", **context)
    return render(request, f"{item['kind']}.html", item=item, max_chars=state.config.server.max_text_chars, **context)


def judgement_from_form(form: Any) -> Judgement:
    if form.get("skip"):
        return Judgement(skip=True)
    if form.get("choice"):
        return Judgement(choice=form["choice"])
    if form.get("rating"):
        return Judgement(rating=form["rating"])
    if form.get("corrected") is not None:
        return Judgement(corrected=form["corrected"])
    # Rankings come as one "rank-<output id>" field per output holding its place (1 = best).
    try:
        places = {int(key.removeprefix("rank-")): int(value) for key, value in form.items() if key.startswith("rank-")}
    except ValueError:
        raise InvalidLabel("places must be whole numbers") from None
    if sorted(places.values()) != list(range(1, len(places) + 1)):
        raise InvalidLabel(f"give every answer a different place, 1 to {len(places)}")
    return Judgement(ranking=sorted(places, key=places.__getitem__))


@router.post("/label/{item_id}")
async def submit_page(item_id: int, request: Request, state: State) -> Response:
    annotator = require_signed_in(state, request)
    form = await checked_form(state, request, annotator)
    try:
        judgement = judgement_from_form(form)
    except ValidationError as exc:
        raise PageError(status.HTTP_422_UNPROCESSABLE_CONTENT, f"Invalid label: {exc.errors()[0]['msg']}") from None
    submit_label(state.sessions, annotator.id, item_id, judgement, state.config.server.max_text_chars)
    return RedirectResponse("/label", status.HTTP_303_SEE_OTHER)


@router.get("/admin", response_class=HTMLResponse)
def admin_page(request: Request, state: State) -> Response:
    annotator = require_signed_in(state, request)
    if not annotator.is_admin:
        raise PageError(status.HTTP_403_FORBIDDEN, "The admin page needs an admin token.")
    with state.sessions() as session:
        stats = collect_stats(session)
    return render(request, "admin.html", annotator=annotator, stats=stats, csrf=csrf_token(state.secret, annotator))
