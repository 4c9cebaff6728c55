"""The board's Mine page in a real browser (Debian's Chromium driven by Playwright) against a
real server: what the signed-in user holds in every area, newest first, changing live as holds
are taken and released through the API elsewhere. Screenshots land in test-output/."""

from __future__ import annotations

from playwright.async_api import Page, expect

from tests.conftest import USER_PASSWORD
from tests.server.test_board import ARENA, HERO, OUTPUT, browser, make_users, open_board
from tests.server.test_board_assets import make_inventory
from tests.support.factories import lock, unlock
from tests.support.graphql import GraphQL

__all__ = ["browser"]  # the fixture

CLAIM = "mutation($id: ID!) { claimGpu(id: $id) { id } }"
RELEASE = "mutation($id: ID!) { releaseGpu(id: $id) { id } }"


def hold_rows(page: Page):
    return page.locator("#holds tbody tr")


async def open_mine(browser, url: str, username: str) -> Page:
    page = await open_board(browser, url, username)
    await page.get_by_role("link", name="Mine").click()
    await expect(page).to_have_url(f"{url}/?page=mine")
    await expect(page.get_by_role("link", name="Mine")).to_have_attribute("aria-current", "page")
    await expect(page.locator("#mine-view")).to_be_visible()
    await expect(page.locator("#board-view")).to_be_hidden()
    await expect(page.locator("#live")).to_have_text("Live", timeout=10_000)
    return page


async def test_holds_taken_and_released_elsewhere_show_up_live(browser, server):
    gpus = await make_inventory(server.url)
    await make_users(server.url, "alice", "bob")
    api = GraphQL(server.url)
    alice_token = await api.sign_in("alice", USER_PASSWORD)
    bob_token = (await api.login("bob", USER_PASSWORD))["accessToken"]
    assert "errors" not in await lock(api, HERO, token=alice_token)  # held before the page opens

    requested = []
    page = await open_mine(browser, server.url, "alice")
    page.on("request", lambda request: requested.append(request.url))
    await page.evaluate("window.notReloaded = true")
    await expect(hold_rows(page)).to_have_count(1)
    await expect(hold_rows(page).first.locator(".what")).to_have_text(f"default:{HERO}")
    await expect(page.locator("#mine-counts")).to_have_text("1 hold in 1 area")

    # A lock and a GPU claimed through the API appear without a reload, newest first.
    assert "errors" not in await lock(api, ARENA, token=alice_token)
    await expect(hold_rows(page)).to_have_count(2, timeout=2_000)
    await api.data(CLAIM, {"id": gpus["GPU-A1"]}, token=alice_token)
    await expect(hold_rows(page)).to_have_count(3, timeout=2_000)
    rows = hold_rows(page)
    await expect(rows.nth(0).locator(".area")).to_have_text("GPU")
    await expect(rows.nth(0).locator(".what")).to_have_text("GPU-A1 (NVIDIA A100)")
    await expect(rows.nth(0).locator(".since")).to_have_text("just now")
    await expect(rows.nth(0).locator(".until")).to_have_text("—")
    await expect(rows.nth(1).locator(".area")).to_have_text("Lock")
    await expect(rows.nth(1).locator(".what")).to_have_text(f"default:{ARENA}")
    await expect(rows.nth(2).locator(".what")).to_have_text(f"default:{HERO}")
    await expect(page.locator("#mine-counts")).to_have_text("3 holds in 2 areas")
    await expect(rows.nth(0).get_by_role("link", name="GPU")).to_have_attribute(
        "href", "/?page=assets"
    )

    # Someone else's holds are not alice's.
    assert "errors" not in await lock(api, "Content/Other.uasset", token=bob_token)
    await api.data(CLAIM, {"id": gpus["GPU-A2"]}, token=bob_token)

    # Releases remove them, live; nothing of bob's ever showed.
    assert "errors" not in await unlock(api, ARENA, token=alice_token)
    await expect(hold_rows(page)).to_have_count(2, timeout=2_000)
    await expect(page.locator("#holds")).not_to_contain_text(ARENA)
    await expect(page.locator("#holds")).not_to_contain_text("Other.uasset")
    await expect(page.locator("#holds")).not_to_contain_text("GPU-A2")
    await api.data(RELEASE, {"id": gpus["GPU-A1"]}, token=alice_token)
    await expect(hold_rows(page)).to_have_count(1, timeout=2_000)
    await expect(hold_rows(page).first.locator(".what")).to_have_text(f"default:{HERO}")
    OUTPUT.mkdir(exist_ok=True)
    await page.screenshot(path=OUTPUT / "board-mine.png", full_page=True)
    assert "errors" not in await unlock(api, HERO, token=alice_token)
    await expect(page.locator("#mine-empty")).to_be_visible(timeout=2_000)
    await expect(page.locator("#holds")).to_be_hidden()
    await expect(page.locator("#mine-counts")).to_have_text("Nothing held")
    assert await page.evaluate("window.notReloaded") is True

    # Back to the locks and forth again: the page reads what is held now.
    assert "errors" not in await lock(api, ARENA, token=alice_token)
    await page.get_by_role("link", name="Locks").click()
    await expect(page.locator("#mine-view")).to_be_hidden()
    await expect(page.locator("#board-view")).to_be_visible()
    await page.go_back()
    await expect(page.locator("#mine-view")).to_be_visible()
    await expect(hold_rows(page)).to_have_count(1)
    await api.close()

    host = server.url.removeprefix("http://")
    foreign = [url for url in requested if url.split("/")[2] != host]
    assert not foreign, f"the Mine page loads something from elsewhere: {foreign}"
