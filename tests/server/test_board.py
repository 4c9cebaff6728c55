"""The lock board in a real browser (Debian's Chromium driven by Playwright) against a real
server: two people see each other's locks live, ask for and force releases, survive a reload
and a server restart, and GraphiQL runs a query with the board's token. Screenshots of the
board land in test-output/ for a reviewer to look at."""

from __future__ import annotations

import asyncio
import shutil
import time

import httpx
import pytest
from playwright.async_api import Page, async_playwright, expect

from tests.conftest import ADMIN_PASSWORD, ROOT, USER_PASSWORD, free_port, start_server, stop_server
from tests.support.factories import lock
from tests.support.graphql import GraphQL

OUTPUT = ROOT / "test-output"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARENA = "Content/Maps/Arena.umap"
HERO = "Content/Characters/Hero.uasset"


@pytest.fixture
async def browser():
    assert shutil.which("chromium"), "Chromium is needed (Debian package chromium)"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        yield launched
        await launched.close()


async def make_users(url: str, *names: str) -> None:
    admin = GraphQL(url)
    await admin.sign_in("admin", ADMIN_PASSWORD)
    for name in names:
        await admin.data(
            "mutation($u: String!, $p: String!) { createUser(input: {username: $u, "
            'email: "x@example.com", password: $p}) { id } }',
            {"u": name, "p": USER_PASSWORD},
        )
    await admin.close()


async def open_board(browser, url: str, username: str, password: str = USER_PASSWORD, **context):
    """A browser context of its own (its own storage), signed in with the keyboard only."""
    page = await (await browser.new_context(**context)).new_page()
    await page.goto(f"{url}/")
    await expect(page.get_by_label("Username")).to_be_focused()
    await page.keyboard.type(username)
    await page.keyboard.press("Tab")
    await page.keyboard.type(password)
    await page.keyboard.press("Enter")
    await expect(page.locator("#live")).to_have_text("Live", timeout=10_000)
    await expect(page.locator("#sign-in-view")).to_be_hidden()
    return page


STORED_LOGIN = """() => new Promise((resolve, reject) => {
    const opened = indexedDB.open("holdfast", 1);
    opened.onupgradeneeded = () => opened.result.createObjectStore("auth");
    opened.onerror = () => reject(opened.error);
    opened.onsuccess = () => {
        const read = opened.result.transaction("auth").objectStore("auth").get("holdfast.session");
        read.onsuccess = () => resolve(read.result || null);
    };
})"""


async def stored_refresh_token(page: Page) -> str | None:
    """The refresh token the board keeps (IndexedDB, shared by the tabs of a browser)."""
    record = await page.evaluate(STORED_LOGIN)
    return record and record["refreshToken"]


def row(page: Page, path: str):
    return page.locator(f'#locks tr[data-path="{path}"]')


async def test_two_people_see_each_other_live_and_the_board_survives_a_restart(
    browser, settings, tmp_path
):
    port = free_port()
    server = start_server(settings, tmp_path / "server.log", port=port)
    other = None
    try:
        await make_users(server.url, "alice", "bob")
        alice = await open_board(browser, server.url, "alice")
        bob = await open_board(browser, server.url, "bob")
        await expect(bob.locator("#empty")).to_have_text("No locks held in this project.")

        # alice locks a path in her board; bob's board shows it within a second, no reload.
        await alice.get_by_label("Path", exact=True).fill(ARENA)
        await alice.get_by_label("Comment").fill("lighting pass")
        await alice.get_by_role("button", name="Lock").click()
        started = time.monotonic()
        await expect(row(bob, ARENA)).to_be_visible(timeout=1_000)
        assert time.monotonic() - started < 1.0
        await expect(row(bob, ARENA).locator(".holder")).to_have_text("alice")
        await expect(row(bob, ARENA)).to_contain_text("lighting pass")
        await expect(row(alice, ARENA).locator(".holder")).to_have_text("alice (you)")
        await expect(bob.locator("#counts")).to_have_text("1 lock · 0 yours")

        # bob cannot take it: the board says who holds it.
        await bob.get_by_label("Path", exact=True).fill(ARENA.lower())
        await bob.get_by_role("button", name="Lock").click()
        await expect(bob.locator("#error")).to_contain_text("held by alice")
        await expect(bob.locator("#error")).to_contain_text("CONFLICT")

        # bob asks alice to release; she sees it live.
        await row(bob, ARENA).get_by_role("button", name="Ask alice to release").click()
        await bob.get_by_label("Message").fill("need it for the demo")
        await bob.get_by_role("button", name="Ask", exact=True).click()
        await expect(alice.locator("#notices")).to_contain_text(
            "bob asks you to release Content/Maps/Arena.umap: “need it for the demo”",
            timeout=2_000,
        )
        OUTPUT.mkdir(exist_ok=True)
        await alice.screenshot(path=OUTPUT / "board-release-requested.png", full_page=True)

        # A reload keeps alice signed in (refresh token) and shows the board as it is.
        await alice.reload()
        await expect(alice.locator("#live")).to_have_text("Live", timeout=10_000)
        await expect(row(alice, ARENA).locator(".holder")).to_have_text("alice (you)")
        await alice.screenshot(path=OUTPUT / "board.png", full_page=True)

        # The server goes away: the board says so, and catches up when it is back.
        stop_server(server)
        await expect(alice.locator("#live")).to_have_text("Reconnecting…", timeout=5_000)
        other = start_server(settings, tmp_path / "other.log")
        api = GraphQL(other.url)
        await api.sign_in("bob", USER_PASSWORD)
        assert "errors" not in await lock(api, HERO)
        await api.close()
        stop_server(other)
        other = None
        server = start_server(settings, tmp_path / "server-again.log", port=port)
        await expect(alice.locator("#live")).to_have_text("Live", timeout=10_000)
        await expect(row(alice, HERO).locator(".holder")).to_have_text("bob", timeout=5_000)
        await expect(row(bob, HERO).locator(".holder")).to_have_text("bob (you)", timeout=10_000)

        # alice releases hers from the board; bob sees the row vanish.
        await row(alice, ARENA).get_by_role("button", name=f"Release {ARENA}").click()
        await expect(row(bob, ARENA)).to_have_count(0, timeout=2_000)
        await expect(bob.locator("#counts")).to_have_text("1 lock · 1 yours")

        # Filters: prefix and mine.
        await bob.get_by_label("Path prefix").fill("content/maps/")
        await expect(bob.locator("#empty")).to_have_text("No locks match the filters.")
        await bob.get_by_label("Path prefix").fill("")
        await bob.get_by_label("Mine only").check()
        await expect(row(bob, HERO)).to_be_visible()
        await alice.get_by_label("Mine only").check()
        await expect(row(alice, HERO)).to_have_count(0)

        # Signing out forgets the session, across reloads too.
        await alice.get_by_role("button", name="Sign out").click()
        await expect(alice.get_by_label("Username")).to_be_visible()
        await expect(alice.locator("#board-view")).to_be_hidden()
        await alice.reload()
        await expect(alice.get_by_label("Username")).to_be_visible()
        assert await stored_refresh_token(alice) is None
        assert await alice.evaluate("localStorage.getItem('holdfast.accessToken')") is None
    finally:
        if other is not None:
            stop_server(other)
        stop_server(server)


async def test_admins_force_release_after_confirming_and_the_holder_is_told(browser, server):
    await make_users(server.url, "bob")
    bob = await open_board(browser, server.url, "bob")
    admin = await open_board(browser, server.url, "admin", ADMIN_PASSWORD)
    await bob.get_by_label("Path", exact=True).fill(HERO)
    await bob.get_by_role("button", name="Lock").click()
    await expect(row(admin, HERO)).to_be_visible(timeout=2_000)
    # Only admins get the button.
    await expect(row(bob, HERO).get_by_role("button", name=f"Force release {HERO}")).to_have_count(
        0
    )

    force = row(admin, HERO).get_by_role("button", name=f"Force release {HERO}")
    await force.click()
    await admin.get_by_role("button", name="Cancel").click()
    await expect(row(admin, HERO)).to_be_visible()
    await force.click()
    await expect(admin.locator("#ask")).to_contain_text("held by bob")
    await admin.locator("#ask-ok").click()
    await expect(row(admin, HERO)).to_have_count(0, timeout=2_000)
    await expect(row(bob, HERO)).to_have_count(0, timeout=2_000)
    await expect(bob.locator("#notices")).to_contain_text(
        "admin force-released your lock on Content/Characters/Hero.uasset"
    )

    # Another project has its own locks; the choice survives a reload.
    api = GraphQL(server.url)
    await api.sign_in("admin", ADMIN_PASSWORD)
    await api.data('mutation { createProject(input: {slug: "ships", name: "Ships"}) { id } }')
    assert "errors" not in await lock(api, "Ships/Hull.uasset", project="ships")
    await api.close()
    await admin.reload()
    await admin.get_by_label("Project").select_option("ships")
    await expect(row(admin, "Ships/Hull.uasset")).to_be_visible()
    await expect(admin.locator("#counts")).to_have_text("1 lock · 1 yours")
    await admin.reload()
    await expect(admin.get_by_label("Project")).to_have_value("ships")
    await expect(row(admin, "Ships/Hull.uasset")).to_be_visible()
    await expect(admin.locator("#live")).to_have_text("Live", timeout=10_000)

    async with httpx.AsyncClient(base_url=server.url) as http:
        token = await admin.evaluate("localStorage.getItem('holdfast.accessToken')")
        body = (
            await http.post(
                "/graphql",
                json={"query": '{ lockHistory(project: "default") { kind actor { username } } }'},
                headers={"Authorization": f"Bearer {token}"},
            )
        ).json()
    assert body["data"]["lockHistory"][-1] == {
        "kind": "FORCE_RELEASED",
        "actor": {"username": "admin"},
    }


async def test_wrong_password_is_shown_and_a_phone_sized_screen_works(browser, server):
    page = await (await browser.new_context(viewport={"width": 390, "height": 844})).new_page()
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    await page.goto(f"{server.url}/")
    await page.get_by_label("Username").fill("admin")
    await page.get_by_label("Password").fill("not-the-password")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#sign-in-error")).to_have_text(
        "wrong username or password (UNAUTHENTICATED)"
    )
    await page.get_by_label("Password").fill(ADMIN_PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#live")).to_have_text("Live", timeout=10_000)
    await expect(page.locator("#sign-in-view")).to_be_hidden()
    await page.get_by_label("Path", exact=True).fill(ARENA)
    await page.get_by_role("button", name="Lock").click()
    await expect(row(page, ARENA)).to_be_visible()
    hostile = "Content/<img src=x onerror=window.pwned=1>.uasset"
    await page.get_by_label("Path", exact=True).fill(hostile)
    await page.get_by_label("Comment").fill("<b>bold</b>")
    await page.get_by_label("Comment").press("Enter")
    await expect(row(page, hostile).locator(".path")).to_have_text(hostile)
    await expect(row(page, hostile)).to_contain_text("<b>bold</b>")
    assert await page.locator("#locks img, #locks b").count() == 0
    assert await page.evaluate("window.pwned") is None
    host = server.url.removeprefix("http://")
    foreign = [url for url in requested if url.split("/")[2] != host]
    assert not foreign, f"the board loads something from elsewhere: {foreign}"
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, "the board scrolls sideways on a phone"
    OUTPUT.mkdir(exist_ok=True)
    await page.screenshot(path=OUTPUT / "board-phone.png", full_page=True)


async def test_graphiql_runs_a_query_with_the_boards_token(browser, server):
    page = await open_board(browser, server.url, "admin", ADMIN_PASSWORD)
    await page.goto(f"{server.url}/graphql")
    editor = page.locator(".graphiql-query-editor .CodeMirror")
    await expect(editor).to_be_visible(timeout=10_000)
    await editor.click()
    await page.keyboard.press("Control+A")
    await page.keyboard.type("{ me { username role } }")
    await page.get_by_role("button", name="Execute query (Ctrl-Enter)").click()
    await expect(page.locator(".graphiql-response")).to_contain_text('"username": "admin"')


async def test_the_board_outlives_its_short_lived_access_tokens(browser, settings, tmp_path):
    """Access tokens of 3 s: the board refreshes them for its calls and its subscription, and
    misses no event across the resubscriptions."""
    running = start_server(settings.replace(access_token_ttl=3), tmp_path / "server.log")
    try:
        await make_users(running.url, "bob")
        page = await open_board(browser, running.url, "admin", ADMIN_PASSWORD)
        first = await stored_refresh_token(page)
        assert first is not None
        bob = GraphQL(running.url)
        for index in range(4):
            await asyncio.sleep(1.5)
            await bob.sign_in("bob", USER_PASSWORD)
            assert "errors" not in await lock(bob, f"Content/B{index}.umap")
        await bob.close()
        for index in range(4):
            await expect(row(page, f"Content/B{index}.umap")).to_be_visible(timeout=5_000)
        await page.get_by_label("Path", exact=True).fill(ARENA)
        await page.keyboard.press("Enter")
        await expect(row(page, ARENA).locator(".holder")).to_have_text("admin (you)")
        await expect(page.locator("#live")).to_have_text("Live", timeout=5_000)
        await expect(page.locator("#error")).to_be_hidden()
        assert await stored_refresh_token(page) not in (None, first)
    finally:
        stop_server(running)


async def test_two_tabs_share_one_login_without_ending_it(browser, settings, tmp_path):
    """Refresh tokens rotate and a reused one ends the login: two tabs refreshing 3-second
    access tokens side by side must take turns, and both stay signed in."""
    running = start_server(settings.replace(access_token_ttl=3), tmp_path / "server.log")
    try:
        first = await open_board(browser, running.url, "admin", ADMIN_PASSWORD)
        second = await first.context.new_page()
        await second.goto(f"{running.url}/")
        await expect(second.locator("#live")).to_have_text("Live", timeout=10_000)
        for index in range(4):
            await asyncio.sleep(1.5)
            for tab, name in ((first, "first"), (second, "second")):
                await tab.get_by_label("Path", exact=True).fill(f"Tabs/{name}-{index}.umap")
                await tab.get_by_label("Path", exact=True).press("Enter")
        for tab in (first, second):
            for index in range(4):
                for name in ("first", "second"):
                    await expect(row(tab, f"Tabs/{name}-{index}.umap")).to_be_visible()
            await expect(tab.locator("#error")).to_be_hidden()
            await expect(tab.locator("#board-view")).to_be_visible()
        await second.reload()
        await expect(second.locator("#live")).to_have_text("Live", timeout=10_000)
        await expect(second.locator("#counts")).to_have_text("8 locks · 8 yours")
    finally:
        stop_server(running)
