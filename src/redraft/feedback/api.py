"""The JSON API (bearer token): next item, submit a label, progress, admin statistics."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from sqlalchemy.orm import sessionmaker

from redraft.feedback.admin import collect_stats
from redraft.feedback.config import FeedbackConfig
from redraft.feedback.queue import Judgement, RowId, progress, serve_next, submit_label
from redraft.feedback.security import authenticate
from redraft.feedback.store import Annotator


@dataclass
class AppState:
    config: FeedbackConfig
    sessions: sessionmaker
    secret: bytes  # signs CSRF tokens; new per process unless configured


def app_state(request: Request) -> AppState:
    return request.app.state.feedback


State = Annotated[AppState, Depends(app_state)]
bearer = HTTPBearer(auto_error=False)


def bearer_annotator(
    state: State, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Annotator:
    with state.sessions() as session:
        annotator = authenticate(session, credentials.credentials if credentials else None)
    if annotator is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "missing or unknown bearer token", {"WWW-Authenticate": "Bearer"}
        )
    return annotator


def bearer_admin(annotator: Annotated[Annotator, Depends(bearer_annotator)]) -> Annotator:
    if not annotator.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this needs an admin token")
    return annotator


CurrentAnnotator = Annotated[Annotator, Depends(bearer_annotator)]


class OutputView(BaseModel):
    id: int
    text: str


class ItemView(BaseModel):
    item_id: int
    kind: str
    prompt: str
    reference_answer: str | None
    outputs: list[OutputView]


class Progress(BaseModel):
    done: int
    remaining: int


class NextResponse(BaseModel):
    item: ItemView | None  # None: nothing left for this annotator


class LabelRequest(Judgement):
    """A label for the item ``item_id``, served to you by GET /api/next: with exactly one of
    choice, ranking, rating, corrected or skip=true, and the one matching the item's kind
    (compare: choice, rank: ranking, rate: rating, correct: corrected) unless you skip."""

    item_id: RowId


class LabelResponse(BaseModel):
    label_id: int
    item_id: int
    kind: str
    created: bool  # False when this was a retry: the stored label is returned, nothing new is written
    label: dict[str, Any]
    next_item: ItemView | None = None  # with ?next=true: the item to label next (saves a round trip)


class ErrorBody(BaseModel):
    error: str


ERRORS = {
    400: "the body cannot be read as JSON (not UTF-8, or nested too deep)",
    401: "missing or unknown bearer token",
    403: "this needs an admin token",
    404: "no such item",
    409: "the item is not assigned to you (its lease may have passed to someone else)",
    413: "the body is larger than server.max_body_bytes",
    422: "invalid request or label (the message names the field)",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the errors a route answers, all ``{"error": message}``."""
    return {code: {"model": ErrorBody, "description": ERRORS[code]} for code in codes}


router = APIRouter(prefix="/api", tags=["labelling"])


@router.get("/next", response_model=NextResponse, responses=errors(401))
def next_item(state: State, annotator: CurrentAnnotator) -> dict[str, Any]:
    """The item to label now; asking again returns the same item until it is labelled."""
    return {"item": serve_next(state.sessions, annotator.id, state.config.queue.lease_seconds)}


@router.post(
    "/labels",
    response_model=LabelResponse,
    status_code=status.HTTP_201_CREATED,
    responses={
        201: {"description": "label stored"},
        200: {
            "model": LabelResponse,
            "description": "already labelled (a retry): the stored label, nothing new written",
        },
        **errors(400, 401, 404, 409, 413, 422),
    },
)
def post_label(
    body: LabelRequest, state: State, annotator: CurrentAnnotator, response: Response, next: bool = False
) -> dict[str, Any]:
    """Label an item served to you. 201 when stored; 200 with the stored label on a repeat.
    With ``?next=true`` the answer also carries the next item, as GET /api/next would."""
    judgement = Judgement.model_validate(body.model_dump(exclude={"item_id"}))
    result = submit_label(state.sessions, annotator.id, body.item_id, judgement, state.config.server.max_text_chars)
    if not result.created:
        response.status_code = status.HTTP_200_OK
    answer = asdict(result)
    if next:
        answer["next_item"] = serve_next(state.sessions, annotator.id, state.config.queue.lease_seconds)
    return answer


@router.get("/progress", response_model=Progress, responses=errors(401))
def get_progress(state: State, annotator: CurrentAnnotator) -> dict[str, int]:
    with state.sessions() as session:
        return progress(session, annotator.id)


@router.get("/admin/stats", responses=errors(401, 403))
def admin_stats(state: State, _admin: Annotated[Annotator, Depends(bearer_admin)]) -> dict[str, Any]:
    """Counts, per-annotator activity and inter-annotator agreement."""
    with state.sessions() as session:
        return collect_stats(session)
