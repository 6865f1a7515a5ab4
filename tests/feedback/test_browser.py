"""A real browser (Debian's Chromium driven by Playwright) against the running app."""

from __future__ import annotations

import random
import shutil

import pytest
from sqlalchemy import select

from redraft.feedback.app import running_server
from redraft.feedback.queue import add_prompt, enqueue
from redraft.feedback.security import add_annotator
from redraft.feedback.store import Comparison, Correction
from tests.feedback.conftest import feedback_config, open_store

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed: apt-get install chromium")
def test_sign_in_compare_with_keyboard_and_correct(sqlite_url):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (dev extra)")
    engine, sessions = open_store(sqlite_url)
    with sessions.begin() as session:
        prompt = add_prompt(session, "5+7=", ["12", "<b>13</b>"], answer="12")
        enqueue(session, prompt, ["compare", "correct"], 1, random.Random(0), correct_index=1)
    token = add_annotator(sessions, "alice")
    with running_server(config=feedback_config(sqlite_url)) as base_url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        dialogs = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(base_url)
        page.fill("#token", token)
        page.click("button[type=submit]")
        page.wait_for_selector("form[data-kind=compare]")
        assert page.locator(".output-text").nth(0).inner_text() in ("12", "<b>13</b>")  # shown as text
        b_is_right = page.locator(".output-text").nth(1).inner_text() == "12"
        page.keyboard.press("b" if b_is_right else "a")
        page.wait_for_selector("form[data-kind=correct]")
        page.fill("#corrected", "12")
        page.keyboard.press("Control+Enter")
        page.wait_for_selector("text=Nothing left to label")
        browser.close()
    assert dialogs == []
    with sessions() as session:
        comparison = session.scalar(select(Comparison))
        chosen = comparison.item.outputs[0 if comparison.choice == "a" else 1].text
        assert chosen == "12"
        assert session.scalar(select(Correction.corrected_text)) == "12"
    engine.dispose()
