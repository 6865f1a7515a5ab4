"""Annotator tokens (stored only as hashes) and CSRF tokens for the HTML forms."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from redraft.errors import RedraftError
from redraft.feedback.store import Annotator, hash_token, write_session

MAX_TOKEN_CHARS = 200
MAX_NAME_CHARS = 100


def add_annotator(sessions: sessionmaker, name: str, is_admin: bool = False) -> str:
    """Create an annotator and return their sign-in token (shown once; only its hash is kept)."""
    name = name.strip()
    if not name or len(name) > MAX_NAME_CHARS:
        raise RedraftError(f"annotator name must be 1 to {MAX_NAME_CHARS} characters")
    token = secrets.token_urlsafe(24)
    try:
        with write_session(sessions) as session:
            session.add(Annotator(name=name, token_hash=hash_token(token), is_admin=is_admin))
    except IntegrityError:
        raise RedraftError(f"an annotator named {name!r} already exists") from None
    return token


def authenticate(session: Session, token: str | None) -> Annotator | None:
    # The lookup is by a hash of the token, so its timing tells nothing about the stored tokens.
    if not token or len(token) > MAX_TOKEN_CHARS:
        return None
    return session.scalar(select(Annotator).where(Annotator.token_hash == hash_token(token)))


def csrf_token(secret: bytes, annotator: Annotator) -> str:
    """Bound to the signed-in annotator: a page of another session, or another site, cannot forge it."""
    return hmac.new(secret, annotator.token_hash.encode(), hashlib.sha256).hexdigest()


def csrf_valid(secret: bytes, annotator: Annotator, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(csrf_token(secret, annotator), given)
