"""The feedback app under attack (issue 32, items 6-11): login CSRF, pre-auth memory, inputs that
once gave a 500 or stored the wrong data, sessions, and the OpenAPI description of the API."""

from __future__ import annotations

import asyncio
import json
import re
from urllib.parse import urlencode

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from redraft.feedback import pages
from redraft.feedback.cli import feedback_app
from redraft.feedback.exchange import export_datasets
from redraft.feedback.pages import COOKIE
from redraft.feedback.store import Correction, Label, Output
from tests.feedback.conftest import bearer, form_csrf, labelling_app, sign_in

HUGE = 2**63  # 9223372036854775808: no 64-bit integer, let alone PostgreSQL's 32-bit ids


def _labels(sessions) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(Label))


def _label_page(client, token) -> tuple[str, str]:
    """(item id, page) of the item the signed-in annotator is to label now."""
    sign_in(client, token)
    page = client.get("/label").text
    return re.search(r'action="/label/(\d+)"', page).group(1), page


@pytest.fixture()
def compare_app(sqlite_url):
    with labelling_app(sqlite_url, ["12", "13"], ["compare"]) as app:
        yield app


# --- 6: login CSRF ----------------------------------------------------------------------------


def test_sign_in_from_another_site_is_refused(compare_app):
    client, tokens, _ = compare_app
    # A page elsewhere auto-posts the attacker's token: without this browser's sign-in nonce...
    forged = client.post("/signin", data={"token": tokens["bob"]}, headers={"Origin": "https://evil.example"})
    assert forged.status_code == 403 and COOKIE not in forged.headers.get("set-cookie", "")
    # ...or with a CSRF token of the attacker's own sign-in page, bound to the attacker's nonce.
    attackers_page = TestClient(client.app).get("/").text
    client.get("/")  # the victim has a sign-in page of their own open
    forged = client.post("/signin", data={"token": tokens["bob"], "csrf": form_csrf(attackers_page)})
    assert forged.status_code == 403 and COOKIE not in client.cookies
    assert client.get("/label", follow_redirects=False).status_code == 303  # still signed out
    assert sign_in(client, tokens["alice"]).headers["location"] == "/label"


# --- 7: pre-auth memory -----------------------------------------------------------------------


def test_chunked_upload_is_cut_off_at_the_body_limit(compare_app):
    client, _, _ = compare_app
    chunk, chunks_sent = b"x" * 65536, []
    limit = client.app.state.feedback.config.server.max_body_bytes

    async def upload():  # 20 MB, chunked: no Content-Length to refuse it by
        for _ in range(320):
            chunks_sent.append(len(chunk))
            yield chunk

    async def post(path: str, content_type: str) -> httpx.Response:
        transport = httpx.ASGITransport(client.app)  # hands the app the body chunk by chunk, as uvicorn does
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            headers = {**bearer("nope"), "Content-Type": content_type}
            return await http.post(path, content=upload(), headers=headers)

    for path, content_type in [("/api/labels", "application/json"), ("/signin", "application/x-www-form-urlencoded")]:
        chunks_sent.clear()
        response = asyncio.run(post(path, content_type))
        assert response.status_code == 413  # not the 401 / 403 after reading it all
        assert sum(chunks_sent) <= limit + len(chunk)
        assert response.headers["cache-control"] == "no-store"


# --- 8: answers that were 500s --------------------------------------------------------------


def test_out_of_range_ids_and_bad_text_are_client_errors(db_url):
    with labelling_app(db_url, ["12"], ["correct"]) as (client, tokens, sessions):
        headers = bearer(tokens["alice"])
        item_id = client.get("/api/next", headers=headers).json()["item"]["item_id"]
        for bad_id in (HUGE, 2**31):
            assert (
                client.post("/api/labels", json={"item_id": bad_id, "skip": True}, headers=headers).status_code == 422
            )
        nul = client.post("/api/labels", json={"item_id": item_id, "corrected": "a\u0000b"}, headers=headers)
        assert nul.status_code == 422 and "NUL" in nul.json()["error"]
        surrogate = client.post(
            "/api/labels",
            content=b'{"item_id": %d, "corrected": "a\\ud800"}' % item_id,
            headers={**headers, "Content-Type": "application/json"},
        )
        assert surrogate.status_code == 422
        _, page = _label_page(client, tokens["alice"])
        for bad_id in (HUGE, 2**31):
            assert client.post(f"/label/{bad_id}", data={"skip": "1", "csrf": form_csrf(page)}).status_code == 422
        assert (
            client.post(f"/label/{item_id}", data={"corrected": "a\u0000b", "csrf": form_csrf(page)}).status_code == 422
        )
        assert _labels(sessions) == 0


def test_odd_form_fields_are_refused(sqlite_url):
    with labelling_app(sqlite_url, ["12", "13", "14"], ["rank"]) as (client, tokens, sessions):
        item_id, page = _label_page(client, tokens["alice"])
        assert client.post(f"/label/{item_id}", data={"skip": "1", "csrf": "é"}).status_code == 403
        as_file = client.post(
            f"/label/{item_id}", data={"skip": "1"}, files={"csrf": ("csrf.txt", form_csrf(page).encode())}
        )
        assert as_file.status_code == 415
        output_ids = re.findall(r'name="rank-(\d+)"', page)
        places = {f"rank-{output_id}": str(place) for place, output_id in enumerate(output_ids[1:], 2)}
        place_file = {f"rank-{output_ids[0]}": ("place.txt", b"1")}
        assert (
            client.post(f"/label/{item_id}", data={**places, "csrf": form_csrf(page)}, files=place_file).status_code
            == 415
        )
        huge_id = {f"rank-{HUGE}": "1", **places, "csrf": form_csrf(page)}
        assert client.post(f"/label/{item_id}", data=huge_id).status_code == 422
        assert _labels(sessions) == 0


# --- 9: the right data, or none ---------------------------------------------------------------


def test_json_labels_take_no_lookalike_types(sqlite_url):
    with labelling_app(sqlite_url, ["12"], ["rate"]) as (client, tokens, sessions):
        headers = bearer(tokens["alice"])
        item_id = client.get("/api/next", headers=headers).json()["item"]["item_id"]
        for lookalike in ({"rating": True}, {"rating": 3.0}, {"rating": "3"}, {"skip": "yes"}, {"skip": 1}):
            answer = client.post("/api/labels", json={"item_id": item_id, **lookalike}, headers=headers)
            assert answer.status_code == 422, lookalike
        assert (
            client.post("/api/labels", json={"item_id": str(item_id), "rating": 3}, headers=headers).status_code == 422
        )
        assert _labels(sessions) == 0
        stored = client.post("/api/labels", json={"item_id": item_id, "rating": 3}, headers=headers)
        assert stored.status_code == 201 and stored.json()["label"] == {"rating": 3}


def test_an_untouched_correction_is_no_correction(sqlite_url, tmp_path):
    original = "\nfirst line\nsecond line"  # a leading newline, which HTML drops right after <textarea>
    with labelling_app(sqlite_url, [original], ["correct"]) as (client, tokens, sessions):
        item_id, page = _label_page(client, tokens["alice"])
        assert "required>\n\nfirst line\nsecond line</textarea>" in page  # the answer's own newline survives
        # What a browser sends for the untouched textarea of the old page: CRLF, first newline gone.
        client.post(f"/label/{item_id}", data={"corrected": "first line\r\nsecond line", "csrf": form_csrf(page)})
        item_id, page = _label_page(client, tokens["bob"])
        client.post(f"/label/{item_id}", data={"corrected": "first line\r\nthird line\r", "csrf": form_csrf(page)})
        with sessions() as session:
            assert list(session.scalars(select(Correction.corrected_text).order_by(Label.id))) == [
                original,
                "first line\nthird line\n",
            ]
        counts = export_datasets(sessions, tmp_path / "out")
        assert counts == {"pairs": 1, "ratings": 0, "sft": 2}
        pair = json.loads((tmp_path / "out" / "pairs.jsonl").read_text())
        assert (pair["chosen"], pair["rejected"]) == ("first line\nthird line\n", original)


def test_export_skips_whitespace_only_corrections_stored_before(sqlite_url, tmp_path):
    with labelling_app(sqlite_url, ["\nfirst line\nsecond line"], ["correct"]) as (client, tokens, sessions):
        item_id = client.get("/api/next", headers=bearer(tokens["alice"])).json()["item"]["item_id"]
        with sessions.begin() as session:  # as the app stored an untouched textarea before the fix
            session.add(Correction(item_id=item_id, annotator_id=1, corrected_text="first line\r\nsecond line"))
        assert export_datasets(sessions, tmp_path / "out")["pairs"] == 0


def test_form_text_that_is_not_utf8_is_refused(sqlite_url):
    with labelling_app(sqlite_url, ["12"], ["correct"]) as (client, tokens, sessions):
        item_id, page = _label_page(client, tokens["alice"])
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        for body in (b"corrected=13%FF%FE", b"corrected=13\xff"):
            answer = client.post(f"/label/{item_id}", content=body + b"&csrf=" + form_csrf(page).encode(), headers=form)
            assert answer.status_code == 400
        assert _labels(sessions) == 0


# --- 10: sessions, caching, hidden characters -------------------------------------------------


def test_sign_out_ends_the_token_and_an_admin_can_rotate_one(compare_app, sqlite_url):
    client, tokens, _ = compare_app
    _, page = _label_page(client, tokens["alice"])
    stolen_cookie = client.cookies[COOKIE]
    signed_out = client.post("/signout", data={"csrf": form_csrf(page)})
    assert signed_out.status_code == 200 and signed_out.headers["cache-control"] == "no-store"
    new_token = re.search(r'<code class="token">([^<]+)</code>', signed_out.text).group(1)
    assert client.get("/api/progress", headers=bearer(tokens["alice"])).status_code == 401
    client.cookies.clear()
    stolen = client.get("/label", headers={"Cookie": f"{COOKIE}={stolen_cookie}"}, follow_redirects=False)
    assert stolen.status_code == 303 and stolen.headers["location"] == "/"
    assert client.get("/api/progress", headers=bearer(new_token)).status_code == 200

    runner = CliRunner()
    rotated = runner.invoke(feedback_app, ["rotate-token", "bob", "--db", sqlite_url])
    assert rotated.exit_code == 0
    assert client.get("/api/progress", headers=bearer(tokens["bob"])).status_code == 401
    assert client.get("/api/progress", headers=bearer(rotated.output.strip())).status_code == 200
    unknown = runner.invoke(feedback_app, ["rotate-token", "nobody", "--db", sqlite_url])
    assert unknown.exit_code != 0 and "no annotator named 'nobody'" in str(unknown.exception)


def test_labelled_data_is_never_cached(compare_app):
    client, tokens, _ = compare_app
    _label_page(client, tokens["boss"])
    for path in ("/", "/label", "/admin", "/api/next", "/api/progress", "/no/such/page"):
        assert client.get(path, headers=bearer(tokens["boss"])).headers["cache-control"] == "no-store", path
    assert "cache-control" not in client.get("/static/style.css").headers


def test_hidden_characters_in_model_text_are_shown(sqlite_url):
    # A right-to-left override makes "12 si rewsna ehT" read as "The answer is 21"; zero-width
    # spaces and tag characters hide text altogether.
    tricky = "The answer is \u202e12\u202c\u200b\U000e0041"
    with labelling_app(sqlite_url, [tricky], ["correct"]) as (client, tokens, sessions):
        _, page = _label_page(client, tokens["alice"])
        shown = re.search(r'<pre class="output-text">(.*?)</pre>', page).group(1)
        assert shown == (
            'The answer is <span class="hidden-char">⟨U+202E⟩</span>12<span class="hidden-char">⟨U+202C⟩</span>'
            '<span class="hidden-char">⟨U+200B⟩</span><span class="hidden-char">⟨U+E0041⟩</span>'
        )
        assert f">\n{tricky}</textarea>" in page  # the text to edit is the text stored
        with sessions() as session:
            assert session.scalar(select(Output.text)) == tricky


# --- 11: the API's schema, and no 500 for any input -------------------------------------------


def test_openapi_schema_declares_the_answers_and_the_one_field_rule(compare_app):
    client, _, _ = compare_app
    schema = client.get("/openapi.json").json()
    post_label = schema["paths"]["/api/labels"]["post"]
    assert {"200", "201", "400", "401", "404", "409", "413", "422"} <= set(post_label["responses"])
    assert post_label["responses"]["409"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }
    assert "401" in schema["paths"]["/api/next"]["get"]["responses"]
    assert {"401", "403"} <= set(schema["paths"]["/api/admin/stats"]["get"]["responses"])
    request = schema["components"]["schemas"]["LabelRequest"]
    assert "exactly one of choice, ranking, rating, corrected or skip=true" in " ".join(request["description"].split())
    assert request["properties"]["item_id"]["maximum"] == 2**31 - 1


HOSTILE_JSON = [
    {"item_id": HUGE, "choice": "a"},
    {"item_id": -HUGE, "skip": True},
    {"item_id": 1, "ranking": [HUGE, -1, 0]},
    {"item_id": 1, "ranking": [[1], {"a": 1}, None]},
    {"item_id": 1, "rating": 1e308},
    {"item_id": 1, "rating": True},
    {"item_id": 1, "skip": "yes"},
    {"item_id": 2, "corrected": "a\u0000b"},
    {"item_id": 2, "corrected": "x" * 100_000},
    {"item_id": 1, "choice": "a", "rating": 3},
    {"item_id": {"nested": [{"deeper": [1, 2, {}]}]}},
    {"item_id": None},
    {},
    [],
    None,
    "text",
    HUGE,
]
HOSTILE_RAW = [
    b"",
    b"{",
    b'{"item_id": 2, "corrected": "\\ud800"}',
    b'{"item_id": 2, "corrected": "\xff\xfe"}',
    b"[" * 5000 + b"]" * 5000,
    b"\x00" * 1000,
]
HOSTILE_FORMS = [
    {"csrf": "é"},
    {"choice": "a", "rating": "1" * 5000, "skip": ""},
    {"rank-1": "1", "rank-x": "2"},
    {f"rank-{HUGE}": "1", "rank-2": str(HUGE)},
    {"corrected": "a\u0000b"},
    {"corrected": "\ud800"},
    {"token": "\u202e" * 300},
    {f"field{i}": "x" for i in range(500)},
]
PATH_VALUES = ["2", str(HUGE), str(2**31), "-1", "x"]


def _hostile_bodies(csrf: str):
    """(content, content type) of each hostile body; the forms also with a valid CSRF token, so
    that they get past the check to the code behind it."""
    for body in HOSTILE_JSON:
        yield json.dumps(body).encode(), "application/json"
    for raw in HOSTILE_RAW:
        yield raw, "application/json"
        yield raw, "application/x-www-form-urlencoded"
    for form in HOSTILE_FORMS:
        for fields in (form, {**form, "csrf": csrf}):
            yield urlencode(fields, errors="surrogatepass").encode(), "application/x-www-form-urlencoded"
    yield (
        b"--b\r\nContent-Disposition: form-data; name=csrf; filename=a\r\n\r\nx\r\n--b--\r\n",
        "multipart/form-data; boundary=b",
    )


def _assert_no_server_error(client, routes, csrf: str, headers: dict[str, str]) -> None:
    bodies = list(_hostile_bodies(csrf))
    for path, method in routes:
        for url in [re.sub(r"\{\w+\}", value, path) for value in PATH_VALUES] if "{" in path else [path]:
            for content, content_type in bodies if method == "POST" else [(None, None)]:
                sent_headers = {**headers, **({"Content-Type": content_type} if content_type else {})}
                answer = client.request(method, url, content=content, headers=sent_headers)
                assert answer.status_code < 500, (method, url, content and content[:80], answer.text[:200])


def test_no_input_makes_a_server_error(sqlite_url):
    with labelling_app(sqlite_url, ["12", "13"], ["compare", "correct"]) as (client, tokens, _):
        # Every route: the API's from its OpenAPI schema, and the pages (which the schema leaves out).
        schema = client.get("/openapi.json").json()
        routes = [(path, method.upper()) for path, operations in schema["paths"].items() for method in operations]
        routes += [(route.path, method) for route in pages.router.routes for method in route.methods]
        routes.sort(key=lambda route: route == ("/signout", "POST"))  # signing out ends the session: last
        # A browser on the sign-in page...
        client.cookies.clear()
        _assert_no_server_error(client, routes, form_csrf(client.get("/").text), {})
        # ...and an annotator with an item served, so that labels reach the store.
        _, page = _label_page(client, tokens["alice"])
        _assert_no_server_error(client, routes, form_csrf(page), bearer(tokens["alice"]))
