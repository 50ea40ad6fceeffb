"""Profile, password change, logout, admin pages, and the session's security properties."""

from __future__ import annotations

import re
import subprocess
import sys

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.system.harness import ServerProcess
from tests.ui.conftest import PASSWORD, new_username, sign_up

NEW_PASSWORD = "a different long passphrase"
CLI = [sys.executable, "-m", "orderproc.cli"]

pytestmark = pytest.mark.ui


def test_profile_edit_and_password_change(page: Page) -> None:
    username = sign_up(page)
    page.goto("/profile")
    page.get_by_label("First name").fill("Grace")
    page.locator("#profile-card").get_by_role("button", name="Save").click()
    expect(page.locator("#profile-card")).to_contain_text("Saved.")

    page.get_by_label("Current password").fill("wrong password here")
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Repeat new password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page.locator("#e-current_password")).to_have_text("That is not your current password.")

    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Repeat new password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page.locator("#password-card")).to_contain_text("Password changed.")

    page.get_by_role("button", name="Log out").click()
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/portfolio$"))


def test_logout_ends_the_session_and_pages_ask_to_log_in(page: Page) -> None:
    sign_up(page)
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_text("You are logged out.")).to_be_visible()
    page.goto("/portfolio")
    expect(page).to_have_url(re.compile(r"/login\?next=/portfolio$"))


def test_session_cookie_is_httponly_and_samesite(page: Page) -> None:
    sign_up(page)
    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["op_session"]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Lax"


def test_admin_sees_users_and_the_audit_log(page: Page, ui_server: ServerProcess) -> None:
    admin = new_username()
    subprocess.run(
        [*CLI, "create-admin", admin, "--password-stdin", "--data-dir", str(ui_server.data_dir)],
        input=PASSWORD,
        env=ui_server.env,
        text=True,
        check=True,
        capture_output=True,
    )
    page.goto("/login")
    page.get_by_label("Username").fill(admin)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("link", name="Admin").click()
    expect(page.locator("table")).to_contain_text(admin)
    page.get_by_role("link", name="Audit log").click()
    expect(page.locator("table")).to_contain_text("login")


def test_a_customer_gets_no_admin_pages(page: Page) -> None:
    sign_up(page)
    expect(page.get_by_role("link", name="Admin")).to_have_count(0)
    page.goto("/admin/users")
    expect(page.get_by_role("heading", name="Admins only")).to_be_visible()


class TestWithoutBrowser:
    def test_a_post_without_the_csrf_token_is_refused(self, ui_server: ServerProcess) -> None:
        with httpx.Client(base_url=ui_server.url) as client:
            client.get("/login")
            answer = client.post("/login", data={"username": "x", "password": "y"})
        assert answer.status_code == 403
        assert "expired" in answer.text

    def test_pages_carry_a_csp_without_inline_scripts(self, ui_server: ServerProcess) -> None:
        with httpx.Client(base_url=ui_server.url) as client:
            page = client.get("/market")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self';" in csp
        assert "unsafe-inline" not in csp
        assert "unsafe-eval" not in csp
        assert re.findall(r"<script(?![^>]*\bsrc=)", page.text) == []
        assert " style=" not in page.text

    def test_the_api_keeps_its_strict_csp(self, ui_server: ServerProcess) -> None:
        with httpx.Client(base_url=ui_server.url) as client:
            answer = client.get("/api/v1/inventory/assets", params={"limit": 1})
        assert answer.headers["content-security-policy"].startswith("default-src 'none'")
