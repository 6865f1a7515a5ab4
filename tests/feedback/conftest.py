"""Feedback-store fixtures: a SQLite file per test and a real PostgreSQL server per session."""

from __future__ import annotations

import glob
import os
import pwd
import random
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from redraft.feedback.app import create_app
from redraft.feedback.config import FeedbackConfig, QueueSection, StoreSection
from redraft.feedback.migrations import upgrade
from redraft.feedback.queue import add_prompt, enqueue
from redraft.feedback.security import add_annotator
from redraft.feedback.store import make_engine, make_sessionmaker


def _postgres_bin() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_postgres_user() -> dict:
    """initdb and postgres refuse to run as root: drop to the 'postgres' (or 'nobody') account."""
    if os.geteuid() != 0:
        return {}
    for name in ("postgres", "nobody"):
        try:
            account = pwd.getpwnam(name)
        except KeyError:
            continue
        return {"user": account.pw_uid, "group": account.pw_gid, "uid": account.pw_uid}
    pytest.skip("running as root and no unprivileged account (postgres/nobody) to run PostgreSQL as")


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL cluster on a free port; yields a URL template without a database name."""
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    account = _as_postgres_user()
    base = Path(tempfile.mkdtemp(prefix="redraft-pg-"))
    if account:
        os.chown(base, account["uid"], account["group"])
    data, port = base / "data", _free_port()
    run_as = {"user": account["user"], "group": account["group"]} if account else {}

    def run(*args: str) -> None:
        subprocess.run(args, check=True, capture_output=True, cwd=base, **run_as)

    run(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
    options = f"-p {port} -k {base} -h 127.0.0.1 -c fsync=off -c max_connections=200"
    run(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(base / "log"), "-w", "start")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(
            [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            check=False,
            capture_output=True,
            cwd=base,
            **run_as,
        )
        shutil.rmtree(base, ignore_errors=True)


def new_postgres_database(server_url: str) -> str:
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url.replace("postgresql+psycopg", "postgresql") + "/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server_url}/{name}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path) -> str:
    """A fresh, empty store URL on each database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'feedback.db'}"
    return new_postgres_database(request.getfixturevalue("postgres_server"))


@pytest.fixture()
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'feedback.db'}"


def open_store(url: str):
    """(engine, sessionmaker) on a migrated store."""
    engine = make_engine(StoreSection(url=url))
    upgrade(engine)
    return engine, make_sessionmaker(engine)


def feedback_config(url: str, labels_per_item: int = 1, **queue) -> FeedbackConfig:
    return FeedbackConfig(store=StoreSection(url=url), queue=QueueSection(labels_per_item=labels_per_item, **queue))


@contextmanager
def labelling_app(url: str, outputs: list[str], kinds: list[str], labels_per_item: int = 2) -> Iterator[tuple]:
    """(TestClient, tokens, sessionmaker) of an app whose queue holds the items of these kinds of
    one prompt ("5+7=", answer "12") with these outputs; tokens of alice, bob and boss (admin).
    Server errors come back as 500 answers, not as exceptions in the test."""
    app = create_app(feedback_config(url, labels_per_item=labels_per_item))
    sessions = app.state.feedback.sessions
    with sessions.begin() as session:
        enqueue(session, add_prompt(session, "5+7=", outputs, answer="12"), kinds, labels_per_item, random.Random(0))
    tokens = {name: add_annotator(sessions, name, is_admin=name == "boss") for name in ("alice", "bob", "boss")}
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, tokens, sessions


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def form_csrf(page: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)


def sign_in(client: TestClient, token: str):
    """Sign in as a browser does: from the sign-in page, whose form carries a CSRF token."""
    client.cookies.clear()
    page = client.get("/")
    response = client.post("/signin", data={"token": token, "csrf": form_csrf(page.text)}, follow_redirects=False)
    assert response.status_code == 303
    return response
