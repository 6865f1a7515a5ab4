"""Server-rendered pages: sign in with a token, label items (keyboard shortcuts), admin overview.

Model text is untrusted: templates are rendered with autoescaping and never mark it safe (the
``reveal`` filter escapes it first, then marks up the characters it makes visible).
Every form that changes state carries a CSRF token bound to the browser's session.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader
from markupsafe import Markup, escape
from pydantic import ValidationError

from redraft.feedback.admin import collect_stats
from redraft.feedback.api import AppState, State
from redraft.feedback.queue import (
    InvalidLabel,
    Judgement,
    RowId,
    progress,
    serve_next,
    submit_label,
)
from redraft.feedback.security import authenticate, csrf_token, csrf_valid, rotate_token
from redraft.feedback.store import Annotator

COOKIE = "redraft_feedback_token"
SIGNIN_COOKIE = "redraft_feedback_signin"  # a nonce the sign-in form's CSRF token is bound to
FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FORM_FIELDS = 100  # a ranking of 64 outputs, the CSRF token and a skip fit
FORGED = "This form has expired or did not come from this site; reload the page."
# Characters that show as nothing or reorder the text around them: C0/C1 controls (but tab and
# newlines), soft hyphen, bidi marks, embeddings, overrides and isolates, zero-width and other
# invisible format characters, the BOM, interlinear annotations and tag characters.
HIDDEN = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000e0000-\U000e007f]"
)


def reveal(text: str) -> Markup:
    """Model text for a page: escaped, each hidden character shown as a ⟨U+XXXX⟩ marker, so that
    annotators judge the text that is stored, not what a bidi override makes of it."""
    return Markup(
        HIDDEN.sub(lambda match: f'<span class="hidden-char">⟨U+{ord(match[0]):04X}⟩</span>', str(escape(text)))
    )


TEMPLATES = Jinja2Templates(
    env=Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True)
)
TEMPLATES.env.filters["reveal"] = reveal

router = APIRouter(include_in_schema=False)


class PageError(Exception):
    """An error shown to the browser as an HTML page with this status."""

    def __init__(self, status_code: int, message: str):
        super().__init__(message)
        self.status_code = status_code


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(request, template, context, status_code=status_code)


def set_cookie(response: Response, state: AppState, name: str, value: str, max_age: int | None = None) -> None:
    secure = state.config.server.secure_cookies
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="strict", secure=secure)


def signed_in(state: AppState, request: Request) -> Annotator | None:
    with state.sessions() as session:
        return authenticate(session, request.cookies.get(COOKIE))


def require_signed_in(state: AppState, request: Request) -> Annotator:
    annotator = signed_in(state, request)
    if annotator is None:
        raise PageError(status.HTTP_401_UNAUTHORIZED, "Please sign in with your annotator token.")
    return annotator


async def read_form(request: Request) -> dict[str, str]:
    """The fields of a page's form. The forms are URL-encoded text: anything else (a multipart
    body, files) is refused, and so is text that is not UTF-8, rather than stored with U+FFFD."""
    if request.headers.get("content-type", "").partition(";")[0].strip().lower() != FORM_TYPE:
        raise PageError(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, f"Send the form as {FORM_TYPE}.")
    try:
        body = (await request.body()).decode()
        return dict(parse_qsl(body, keep_blank_values=True, errors="strict", max_num_fields=MAX_FORM_FIELDS))
    except ValueError:  # UnicodeDecodeError too
        raise PageError(status.HTTP_400_BAD_REQUEST, "The form is not URL-encoded UTF-8 text.") from None


async def checked_form(state: AppState, request: Request, annotator: Annotator) -> dict[str, str]:
    form = await read_form(request)
    if not csrf_valid(state.secret, annotator.token_hash, form.get("csrf")):
        raise PageError(status.HTTP_403_FORBIDDEN, FORGED)
    return form


def _signin_key(nonce: str) -> str:
    return f"signin:{nonce}"


def signin_page(request: Request, state: AppState, status_code: int = 200, **context: Any) -> Response:
    """The sign-in form. Its CSRF token is bound to a nonce cookie of this browser, which another
    site can neither read nor send along (SameSite): so a page there cannot sign the browser in to
    the attacker's account, whose labels the victim would then be giving (login CSRF)."""
    nonce = request.cookies.get(SIGNIN_COOKIE) or secrets.token_urlsafe(16)
    response = render(request, "signin.html", status_code, csrf=csrf_token(state.secret, _signin_key(nonce)), **context)
    set_cookie(response, state, SIGNIN_COOKIE, nonce)
    return response


@router.get("/", response_class=HTMLResponse)
def home(request: Request, state: State) -> Response:
    if signed_in(state, request) is not None:
        return RedirectResponse("/label", status.HTTP_303_SEE_OTHER)
    return signin_page(request, state)


@router.post("/signin")
async def sign_in(request: Request, state: State) -> Response:
    form = await read_form(request)
    nonce = request.cookies.get(SIGNIN_COOKIE)
    if not nonce or not csrf_valid(state.secret, _signin_key(nonce), form.get("csrf")):
        raise PageError(status.HTTP_403_FORBIDDEN, FORGED)
    token = form.get("token", "").strip()
    with state.sessions() as session:
        annotator = authenticate(session, token)
    if annotator is None:
        return signin_page(request, state, status.HTTP_401_UNAUTHORIZED, error="Unknown token.")
    response = RedirectResponse("/admin" if annotator.is_admin else "/label", status.HTTP_303_SEE_OTHER)
    set_cookie(response, state, COOKIE, token, max_age=30 * 86400)
    response.delete_cookie(SIGNIN_COOKIE)
    return response


@router.post("/signout")
async def sign_out(request: Request, state: State) -> Response:
    annotator = require_signed_in(state, request)
    await checked_form(state, request, annotator)
    # The cookie holds the token itself, and deleting it leaves any copy working: so the token is
    # replaced, and the new one shown this once, for the next sign-in.
    response = render(request, "signedout.html", token=rotate_token(state.sessions, annotator.name))
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
    context = {
        "annotator": annotator,
        "progress": done_and_left,
        "csrf": csrf_token(state.secret, annotator.token_hash),
    }
    if item is None:
        return render(request, "done.html", **context)
    return render(request, f"{item['kind']}.html", item=item, max_chars=state.config.server.max_text_chars, **context)


def _whole_number(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InvalidLabel(f"{what} must be whole numbers") from None


def judgement_from_form(form: dict[str, str]) -> Judgement:
    # Form fields are text: numbers are converted here, as the strict Judgement takes no "3" for 3.
    if form.get("skip"):
        return Judgement(skip=True)
    if form.get("choice"):
        return Judgement(choice=form["choice"])
    if form.get("rating"):
        return Judgement(rating=_whole_number(form["rating"], "ratings"))
    if form.get("corrected") is not None:
        return Judgement(corrected=form["corrected"])
    # Rankings come as one "rank-<output id>" field per output holding its place (1 = best).
    places = {
        _whole_number(key.removeprefix("rank-"), "output ids"): _whole_number(value, "places")
        for key, value in form.items()
        if key.startswith("rank-")
    }
    if sorted(places.values()) != list(range(1, len(places) + 1)):
        raise InvalidLabel(f"give every answer a different place, 1 to {len(places)}")
    return Judgement(ranking=sorted(places, key=places.__getitem__))


@router.post("/label/{item_id}")
async def submit_page(item_id: RowId, request: Request, state: State) -> Response:
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
    csrf = csrf_token(state.secret, annotator.token_hash)
    return render(request, "admin.html", annotator=annotator, stats=stats, csrf=csrf)
