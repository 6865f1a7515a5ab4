from __future__ import annotations

import random
import re
import secrets

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from redraft.config import dump_config
from redraft.feedback.app import CONFIG_ENV, SECRET_ENV, app_from_environment, create_app
from redraft.feedback.queue import add_prompt, enqueue
from redraft.feedback.security import add_annotator
from redraft.feedback.store import Correction, Label
from tests.feedback.conftest import bearer, feedback_config, form_csrf, labelling_app, sign_in

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture()
def app_and_tokens(sqlite_url):
    with labelling_app(sqlite_url, ["12", HOSTILE], ["compare", "correct"]) as client_tokens_sessions:
        yield client_tokens_sessions


def test_api_labels_with_bearer_tokens(app_and_tokens):
    client, tokens, _ = app_and_tokens
    assert client.get("/api/next").json() == {"error": "missing or unknown bearer token"}
    item = client.get("/api/next", headers=bearer(tokens["alice"])).json()["item"]
    assert item["kind"] == "compare" and item["reference_answer"] == "12"
    body = {"item_id": item["item_id"], "choice": "a"}
    first = client.post("/api/labels?next=true", json=body, headers=bearer(tokens["alice"]))
    assert first.status_code == 201 and first.json()["next_item"]["kind"] == "correct"
    retry = client.post("/api/labels", json=body, headers=bearer(tokens["alice"]))
    assert retry.status_code == 200 and retry.json()["label_id"] == first.json()["label_id"]
    assert client.get("/api/progress", headers=bearer(tokens["alice"])).json() == {"done": 1, "remaining": 1}
    assert "/api/labels" in client.get("/openapi.json").json()["paths"]


def test_api_errors_are_short_json(app_and_tokens):
    client, tokens, _ = app_and_tokens
    headers = bearer(tokens["alice"])
    bad = client.post("/api/labels", json={"item_id": 1, "rating": 99}, headers=headers)
    assert bad.status_code == 422 and bad.json()["error"].startswith("invalid request: body.rating")
    assert client.post("/api/labels", json={"item_id": 1, "choice": "a"}, headers=headers).status_code == 409
    assert client.post("/api/labels", json={"item_id": 999, "choice": "a"}, headers=headers).json() == {
        "error": "no item 999"
    }
    assert client.get("/api/admin/stats", headers=headers).status_code == 403
    huge = client.post("/api/labels", content=b"x" * 2_000_000, headers={**headers, "content-type": "application/json"})
    assert huge.status_code == 413
    assert "Traceback" not in client.get("/no/such/page").text


def test_pages_escape_model_text_and_require_csrf(app_and_tokens):
    client, tokens, sessions = app_and_tokens
    sign_in(client, tokens["alice"])
    page = client.get("/label")
    assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    assert "<script>alert" not in page.text and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text
    assert "<img src=x" not in page.text
    item_id = re.search(r'action="/label/(\d+)"', page.text).group(1)
    forged = client.post(f"/label/{item_id}", data={"choice": "a", "csrf": "0" * 64}, follow_redirects=False)
    assert forged.status_code == 403 and "did not come from this site" in forged.text
    done = client.post(f"/label/{item_id}", data={"choice": "b", "csrf": form_csrf(page.text)}, follow_redirects=False)
    assert done.status_code == 303
    page = client.get("/label")
    assert 'data-kind="correct"' in page.text
    item_id = re.search(r'action="/label/(\d+)"', page.text).group(1)
    client.post(f"/label/{item_id}", data={"corrected": "12", "csrf": form_csrf(page.text)})
    with sessions() as session:
        assert session.scalar(select(Correction.corrected_text)) == "12"
        assert session.scalar(select(Label.kind).where(Label.kind == "compare")) == "compare"


def test_admin_page_shows_counts_and_agreement(app_and_tokens):
    client, tokens, _ = app_and_tokens
    for name in ("alice", "bob"):
        headers = bearer(tokens[name])
        item = client.get("/api/next", headers=headers).json()["item"]
        client.post("/api/labels", json={"item_id": item["item_id"], "choice": "a"}, headers=headers)
    stats = client.get("/api/admin/stats", headers=bearer(tokens["boss"])).json()
    assert stats["counts"]["labels"] == {"compare": 2}
    assert stats["agreement"]["compare"]["items"] == 1 and stats["agreement"]["compare"]["percent_agreement"] == 1.0
    sign_in(client, tokens["alice"])
    assert client.get("/admin").status_code == 403
    sign_in(client, tokens["boss"])
    page = client.get("/admin").text
    assert "Inter-annotator agreement" in page and "1.000" in page and "alice" in page


def test_wrong_token_and_unusable_store(tmp_path, app_and_tokens):
    client, _, _ = app_and_tokens
    page = client.get("/").text
    assert client.post("/signin", data={"token": "nope", "csrf": form_csrf(page)}).status_code == 401
    from redraft.errors import RedraftError

    with pytest.raises(RedraftError, match="cannot open the feedback store"):
        create_app(feedback_config(f"sqlite:///{tmp_path}/missing/dir/x.db"))


def test_worker_processes_accept_each_others_forms(tmp_path, sqlite_url, monkeypatch):
    # `redraft feedback serve --workers N` builds one app per process from the environment; a form
    # one worker rendered must pass the CSRF check of another (the kernel picks the worker).
    config = feedback_config(sqlite_url)
    dump_config(config, tmp_path / "feedback.yaml")
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "feedback.yaml"))
    monkeypatch.setenv(SECRET_ENV, secrets.token_hex(32))
    with TestClient(app_from_environment()) as one, TestClient(app_from_environment()) as other:
        sessions = one.app.state.feedback.sessions
        with sessions.begin() as session:
            enqueue(session, add_prompt(session, "5+7=", ["12", "13"], answer="12"), ["compare"], 1, random.Random(0))
        token = add_annotator(sessions, "alice")
        sign_in(one, token)
        sign_in(other, token)
        page = one.get("/label").text
        item_id = re.search(r'action="/label/(\d+)"', page).group(1)
        done = other.post(f"/label/{item_id}", data={"choice": "a", "csrf": form_csrf(page)}, follow_redirects=False)
        assert done.status_code == 303
        with sessions() as session:
            assert session.scalar(select(Label.item_id)) == int(item_id)
