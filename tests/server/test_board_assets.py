"""The board's Assets page in a real browser (Debian's Chromium driven by Playwright) against a
real server: two people and an admin claim, filter, ask for, release and force-release GPUs and
see each other's changes live; after a server restart the page catches up from the last event it
saw. Screenshots land in test-output/."""

from __future__ import annotations

import time

from playwright.async_api import Page, expect

from tests.conftest import ADMIN_PASSWORD, USER_PASSWORD, free_port, start_server, stop_server
from tests.server.test_board import OUTPUT, browser, make_users, open_board
from tests.support import assets
from tests.support.graphql import GraphQL

__all__ = ["browser"]  # the fixture

CLAIM = "mutation($id: ID!) { claimGpu(id: $id) { id } }"
ASK = "mutation($id: ID!, $m: String) { requestGpuRelease(id: $id, message: $m) { seq } }"
GPU = "query($id: ID!) { gpu(id: $id) { holder { username } dueBack } }"


async def make_inventory(url: str) -> dict[str, str]:
    """Two GPU servers, three GPUs; their ids by serial."""
    admin = GraphQL(url)
    token = await admin.sign_in("admin", ADMIN_PASSWORD)
    dc = await assets.datacenter(admin, token, name="Frankfurt FRA1", location="Frankfurt")
    first = await assets.server(admin, token, dc["id"], name="fra1-gpu-01")
    second = await assets.server(admin, token, dc["id"], name="fra1-gpu-02")
    await assets.server(admin, token, dc["id"], name="fra1-web-01")  # no GPU: not in the select
    ids = {}
    for serial, model, host in (
        ("GPU-A1", "NVIDIA A100", first),
        ("GPU-A2", "NVIDIA A100", first),
        ("GPU-H1", "NVIDIA H100", second),
    ):
        made = await assets.gpu(
            admin, token, serial=serial, model=model, memoryGb=80, serverId=host["id"]
        )
        ids[serial] = made["id"]
    await admin.close()
    return ids


def gpu_row(page: Page, serial: str):
    return page.locator(f'#gpus tr[data-serial="{serial}"]')


async def open_assets(browser, url: str, username: str, password: str = USER_PASSWORD) -> Page:
    """Signed in on the lock board, then to the Assets page by its nav link."""
    page = await open_board(browser, url, username, password)
    await page.get_by_role("link", name="Assets").click()
    await expect(page).to_have_url(f"{url}/?page=assets")
    await expect(page.locator("#assets-view")).to_be_visible()
    await expect(page.locator("#board-view")).to_be_hidden()
    await expect(page.locator("#live")).to_have_text("Live", timeout=10_000)
    await expect(gpu_row(page, "GPU-A1")).to_be_visible(timeout=5_000)
    return page


async def local_time_in(page: Page, minutes: int) -> str:
    """A value for <input type=datetime-local>, `minutes` from now in the browser's zone."""
    return await page.evaluate(
        """(minutes) => {
            const at = new Date(Date.now() + minutes * 60_000);
            at.setMinutes(at.getMinutes() - at.getTimezoneOffset());
            return at.toISOString().slice(0, 16);
        }""",
        minutes,
    )


async def test_people_claim_ask_and_force_release_gpus_and_see_it_live(browser, server):
    ids = await make_inventory(server.url)
    await make_users(server.url, "alice", "bob")
    alice = await open_assets(browser, server.url, "alice")

    # A mail's link opens the page straight away (and the login survives the reload).
    requested = []
    bob = await open_board(browser, server.url, "bob")
    bob.on("request", lambda request: requested.append(request.url))
    await bob.goto(f"{server.url}/?page=assets")
    await expect(bob.locator("#live")).to_have_text("Live", timeout=10_000)
    await expect(bob.get_by_role("link", name="Assets")).to_have_attribute("aria-current", "page")
    await expect(bob.locator("#gpu-counts")).to_have_text("3 GPUs · 3 free · 0 yours")
    await expect(gpu_row(bob, "GPU-A1").locator(".holder")).to_have_text("free")
    await expect(gpu_row(bob, "GPU-A1").locator(".server")).to_have_text("fra1-gpu-01")
    await expect(gpu_row(bob, "GPU-A1")).to_contain_text("NVIDIA A100 · 80 GB")
    await bob.evaluate("window.notReloaded = true")

    # alice claims one with a due-back time; bob's open page shows her as the holder, live.
    await gpu_row(alice, "GPU-A1").get_by_role("button", name="Claim GPU-A1").click()
    await alice.get_by_label("Due back").fill(await local_time_in(alice, 3 * 60 + 1))
    await alice.get_by_role("button", name="Claim", exact=True).click()
    started = time.monotonic()
    await expect(gpu_row(bob, "GPU-A1").locator(".holder")).to_have_text("alice", timeout=2_000)
    assert time.monotonic() - started < 2.0
    assert await bob.evaluate("window.notReloaded") is True
    await expect(gpu_row(bob, "GPU-A1").locator(".due")).to_have_text("in 3 h")
    await expect(gpu_row(bob, "GPU-A1").locator(".since")).to_have_text("just now")
    await expect(gpu_row(bob, "GPU-A1").get_by_role("button", name="Claim GPU-A1")).to_have_count(0)
    await expect(gpu_row(alice, "GPU-A1").locator(".holder")).to_have_text("alice (you)")
    await expect(
        gpu_row(alice, "GPU-A1").get_by_role("button", name="Release GPU-A1")
    ).to_be_visible()
    await expect(bob.locator("#gpu-counts")).to_have_text("3 GPUs · 2 free · 0 yours")
    api = GraphQL(server.url)
    await api.sign_in("alice", USER_PASSWORD)
    assert (await api.data(GPU, {"id": ids["GPU-A1"]}))["gpu"]["dueBack"] is not None

    # bob opens the claim of another; alice takes it first: the page names her (CONFLICT).
    await gpu_row(bob, "GPU-A2").get_by_role("button", name="Claim GPU-A2").click()
    await api.data(CLAIM, {"id": ids["GPU-A2"]})
    await bob.get_by_role("button", name="Claim", exact=True).click()
    await expect(bob.locator("#assets-error")).to_contain_text("held by alice")
    await expect(bob.locator("#assets-error")).to_contain_text("CONFLICT")
    await expect(gpu_row(bob, "GPU-A2").locator(".holder")).to_have_text("alice")

    # Filters: free, mine, by server (only servers with GPUs are offered).
    await bob.get_by_label("Free only").check()
    await expect(bob.locator("#gpus tbody tr")).to_have_count(1)
    await expect(gpu_row(bob, "GPU-H1")).to_be_visible()
    await bob.get_by_label("Free only").uncheck()
    await bob.get_by_label("Held by me").check()
    await expect(bob.locator("#gpu-empty")).to_have_text("No GPUs match the filters.")
    await bob.get_by_label("Held by me").uncheck()
    await alice.get_by_label("Held by me").check()
    await expect(alice.locator("#gpus tbody tr")).to_have_count(2)
    await expect(gpu_row(alice, "GPU-H1")).to_have_count(0)
    await alice.get_by_label("Held by me").uncheck()
    options = await bob.get_by_label("Server").locator("option").all_inner_texts()
    assert options == ["All servers", "fra1-gpu-01", "fra1-gpu-02"]
    await bob.get_by_label("Server").select_option(label="fra1-gpu-02")
    await expect(bob.locator("#gpus tbody tr")).to_have_count(1)
    await expect(gpu_row(bob, "GPU-H1")).to_be_visible()
    await bob.get_by_label("Server").select_option(label="All servers")
    await expect(bob.locator("#gpus tbody tr")).to_have_count(3)

    # bob asks alice to release; she sees it live. Only admins get the force button.
    await expect(gpu_row(bob, "GPU-A1").get_by_role("button", name="Force release")).to_have_count(
        0
    )
    await gpu_row(bob, "GPU-A1").get_by_role("button", name="Ask alice to release GPU-A1").click()
    await bob.get_by_label("Message").fill("need it for the training run")
    await bob.get_by_role("button", name="Ask", exact=True).click()
    await expect(bob.locator("#notices")).to_contain_text("Asked alice to release the GPU GPU-A1.")
    await expect(alice.locator("#notices")).to_contain_text(
        "bob asks you to release the GPU GPU-A1: “need it for the training run”", timeout=2_000
    )

    # An admin force-releases it (after confirming); it turns free on alice's page, and she is told.
    admin = await open_assets(browser, server.url, "admin", ADMIN_PASSWORD)
    force = gpu_row(admin, "GPU-A1").get_by_role("button", name="Force release GPU-A1")
    await force.click()
    await expect(admin.locator("#ask")).to_contain_text("held by alice")
    await admin.locator("#ask-ok").click()
    await expect(gpu_row(alice, "GPU-A1").locator(".holder")).to_have_text("free", timeout=2_000)
    await expect(gpu_row(alice, "GPU-A1").locator(".due")).to_have_text("—")
    await expect(alice.locator("#notices")).to_contain_text(
        "admin force-released your GPU GPU-A1", timeout=2_000
    )
    await expect(gpu_row(bob, "GPU-A1").get_by_role("button", name="Claim GPU-A1")).to_be_visible()
    await expect(gpu_row(admin, "GPU-A1").locator(".holder")).to_have_text("free")

    # alice releases her other one with the button; everyone sees it free.
    await gpu_row(alice, "GPU-A2").get_by_role("button", name="Release GPU-A2").click()
    await expect(gpu_row(bob, "GPU-A2").locator(".holder")).to_have_text("free", timeout=2_000)
    await expect(bob.locator("#gpu-counts")).to_have_text("3 GPUs · 3 free · 0 yours")
    await expect(alice.locator("#assets-error")).to_be_hidden()
    OUTPUT.mkdir(exist_ok=True)
    await alice.screenshot(path=OUTPUT / "board-assets.png", full_page=True)

    # Back to the locks by the nav (and with the browser's back button to the GPUs).
    await bob.get_by_role("link", name="Locks").click()
    await expect(bob.locator("#board-view")).to_be_visible()
    await expect(bob.locator("#assets-view")).to_be_hidden()
    await expect(bob.locator("#live")).to_have_text("Live", timeout=10_000)
    await bob.go_back()
    await expect(bob.locator("#assets-view")).to_be_visible()
    await expect(gpu_row(bob, "GPU-A1").locator(".holder")).to_have_text("free")
    await api.close()

    host = server.url.removeprefix("http://")
    foreign = [url for url in requested if url.split("/")[2] != host]
    assert not foreign, f"the Assets page loads something from elsewhere: {foreign}"


async def test_the_assets_page_catches_up_after_the_server_was_gone(browser, settings, tmp_path):
    """The page resubscribes with the last seq it saw: what happened while it was cut off
    arrives, a request to release included (a reloaded list alone would not show that)."""
    port = free_port()
    server = start_server(settings, tmp_path / "server.log", port=port)
    other = None
    try:
        ids = await make_inventory(server.url)
        await make_users(server.url, "alice", "bob")
        alice = await open_assets(browser, server.url, "alice")
        await gpu_row(alice, "GPU-H1").get_by_role("button", name="Claim GPU-H1").click()
        await alice.get_by_role("button", name="Claim", exact=True).click()
        await expect(gpu_row(alice, "GPU-H1").locator(".holder")).to_have_text("alice (you)")

        stop_server(server)
        await expect(alice.locator("#live")).to_have_text("Reconnecting…", timeout=5_000)
        other = start_server(settings, tmp_path / "other.log")
        api = GraphQL(other.url)
        await api.sign_in("bob", USER_PASSWORD)
        await api.data(CLAIM, {"id": ids["GPU-A2"]})
        await api.data(ASK, {"id": ids["GPU-H1"], "m": "while you were away"})
        await api.close()
        stop_server(other)
        other = None
        server = start_server(settings, tmp_path / "server-again.log", port=port)

        await expect(alice.locator("#live")).to_have_text("Live", timeout=10_000)
        await expect(gpu_row(alice, "GPU-A2").locator(".holder")).to_have_text("bob", timeout=5_000)
        await expect(alice.locator("#notices")).to_contain_text(
            "bob asks you to release the GPU GPU-H1: “while you were away”"
        )
        await expect(alice.locator("#gpu-counts")).to_have_text("3 GPUs · 1 free · 1 yours")
    finally:
        if other is not None:
            stop_server(other)
        stop_server(server)
