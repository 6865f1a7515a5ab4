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


def _new_token() -> str:
    return secrets.token_urlsafe(24)


def add_annotator(sessions: sessionmaker, name: str, is_admin: bool = False) -> str:
    """Create an annotator and return their sign-in token (shown once; only its hash is kept)."""
    name = name.strip()
    if not name or len(name) > MAX_NAME_CHARS:
        raise RedraftError(f"annotator name must be 1 to {MAX_NAME_CHARS} characters")
    token = _new_token()
    try:
        with write_session(sessions) as session:
            session.add(Annotator(name=name, token_hash=hash_token(token), is_admin=is_admin))
    except IntegrityError:
        raise RedraftError(f"an annotator named {name!r} already exists") from None
    return token


def rotate_token(sessions: sessionmaker, name: str) -> str:
    """Give an annotator a new sign-in token and return it (shown once). The old token stops
    working at once: browsers and API clients present the token itself, so all of them are out."""
    token = _new_token()
    with write_session(sessions) as session:
        annotator = session.scalar(select(Annotator).where(Annotator.name == name))
        if annotator is None:
            raise RedraftError(f"no annotator named {name!r}")
        annotator.token_hash = hash_token(token)
    return token


def authenticate(session: Session, token: str | None) -> Annotator | None:
    # The lookup is by a hash of the token, so its timing tells nothing about the stored tokens.
    if not token or len(token) > MAX_TOKEN_CHARS:
        return None
    return session.scalar(select(Annotator).where(Annotator.token_hash == hash_token(token)))


def csrf_token(secret: bytes, session_key: str) -> str:
    """Bound to one browser session (a signed-in annotator's token hash, or the nonce of a sign-in
    page): a page of another session, or another site, cannot forge it."""
    return hmac.new(secret, session_key.encode(), hashlib.sha256).hexdigest()


def csrf_valid(secret: bytes, session_key: str, given: object) -> bool:
    # The field is untrusted: a file upload or non-ASCII text is simply not a valid token
    # (compare_digest refuses non-ASCII strings with a TypeError).
    return isinstance(given, str) and given.isascii() and hmac.compare_digest(csrf_token(secret, session_key), given)
