"""Lock alerts by mail through a real SMTP server (aiosmtpd): written with the change, sent by
a job, at most once even with several senders, retried when the server is down, and kept as
SKIPPED when no server is configured."""

import asyncio

import pytest
from sqlalchemy import select

from db.engine import Database
from db.notify import OutboxMessage
from server.app import create_app
from tests.conftest import ADMIN_PASSWORD, USER_PASSWORD, free_port
from tests.support.graphql import GraphQL

ACQUIRE = 'mutation { acquireLock(project: "default", path: "Content/Hero.uasset") { id } }'
FORCE = """mutation { releaseLock(project: "default", path: "Content/Hero.uasset", force: true)
    { id } }"""
REQUEST = """mutation { requestLockRelease(project: "default", path: "Content/Hero.uasset",
    message: "need it <now>") { seq } }"""


async def outbox(settings) -> list[OutboxMessage]:
    db = Database(settings.database_url)
    try:
        async with db.read() as session:
            query = select(OutboxMessage).order_by(OutboxMessage.id)
            return list((await session.execute(query)).scalars())
    finally:
        await db.dispose()


async def access_token(client: GraphQL, username: str, password: str) -> str:
    return (await client.login(username, password))["accessToken"]


async def holder_and_admin(client: GraphQL) -> tuple[str, str]:
    admin = await access_token(client, "admin", ADMIN_PASSWORD)
    await client.data(
        f"""mutation {{ createUser(input: {{username: "mira",
        email: "mira@studio.example", password: "{USER_PASSWORD}"}}) {{ id }} }}""",
        token=admin,
    )
    return await access_token(client, "mira", USER_PASSWORD), admin


@pytest.fixture
def mail_settings(settings, smtp_server):
    return settings.replace(
        smtp_host="127.0.0.1",
        smtp_port=smtp_server.port,
        smtp_tls="none",
        mail_from="holdfast@studio.example",
        run_jobs=False,
        public_url="https://locks.studio.example",
    )


async def test_the_holder_is_mailed_when_their_lock_is_force_released(mail_settings, smtp_server):
    app = create_app(mail_settings)
    async with app.router.lifespan_context(app):
        client = GraphQL(app)
        mira, admin = await holder_and_admin(client)
        await client.data(ACQUIRE, token=mira)
        await client.data(REQUEST, token=admin)
        await client.data(FORCE, token=admin)
        # The mailer writes mail after the changes commit: one round reads all three events.
        assert await outbox(mail_settings) == []
        assert await app.state.services.notifier.mail_about_events() == 3
        [request, forced] = await outbox(mail_settings)
        assert (request.status, forced.status) == ("pending", "pending")
        assert await app.state.services.jobs.run_pending() >= 2  # two mails + periodic rounds
    assert [m["Subject"] for m in smtp_server.messages] == [
        "admin asks you to release Content/Hero.uasset",
        "Your lock on Content/Hero.uasset was released by admin",
    ]
    asked = smtp_server.messages[0]
    assert asked["To"] == "mira@studio.example" and asked["From"] == "holdfast@studio.example"
    text = asked.get_body(("plain",)).get_content()
    html = asked.get_body(("html",)).get_content()
    assert 'Their message: "need it <now>"' in text
    assert "need it &lt;now&gt;" in html and "https://locks.studio.example/?project=default" in html
    assert [m.status for m in await outbox(mail_settings)] == ["sent", "sent"]


async def test_each_message_is_sent_once_however_many_senders(mail_settings, smtp_server):
    apps = [create_app(mail_settings) for _ in range(3)]
    async with (
        apps[0].router.lifespan_context(apps[0]),
        apps[1].router.lifespan_context(apps[1]),
        apps[2].router.lifespan_context(apps[2]),
    ):
        client = GraphQL(apps[0])
        mira, admin = await holder_and_admin(client)
        await client.data(ACQUIRE, token=mira)
        for _ in range(5):
            await client.data(REQUEST, token=admin)
        for _ in range(3):
            await asyncio.gather(*(app.state.services.jobs.run_pending() for app in apps))
    assert len(smtp_server.messages) == 5
    assert [m.status for m in await outbox(mail_settings)] == ["sent"] * 5


async def test_a_mail_server_that_is_down_gets_the_message_later(mail_settings, smtp_server):
    down = mail_settings.replace(smtp_port=free_port())
    app = create_app(down)
    async with app.router.lifespan_context(app):
        client = GraphQL(app)
        mira, admin = await holder_and_admin(client)
        await client.data(ACQUIRE, token=mira)
        await client.data(REQUEST, token=admin)
        await app.state.services.jobs.run_pending()
        [message] = await outbox(down)
        assert message.status == "pending" and message.attempts == 1
        assert "Error" in message.error
    assert smtp_server.messages == []


async def test_without_a_mail_server_messages_are_kept_as_skipped(settings, smtp_server):
    app = create_app(settings.replace(run_jobs=False))
    async with app.router.lifespan_context(app):
        client = GraphQL(app)
        mira, admin = await holder_and_admin(client)
        await client.data(ACQUIRE, token=mira)
        await client.data(REQUEST, token=admin)
        await app.state.services.jobs.run_pending()
    [message] = await outbox(settings)
    assert (message.status, message.to_address) == ("skipped", "mira@studio.example")
    assert smtp_server.messages == []


async def test_no_mail_when_you_act_on_your_own_lock(mail_settings, smtp_server):
    app = create_app(mail_settings)
    async with app.router.lifespan_context(app):
        client = GraphQL(app)
        mira, _ = await holder_and_admin(client)
        await client.data(ACQUIRE, token=mira)
        await client.data(FORCE, token=mira)
        assert await app.state.services.notifier.mail_about_events() == 2
    assert await outbox(mail_settings) == []


def link_in(message) -> str:
    import re

    return re.search(r"token=(hfa_[\w-]+)", message.get_body(("plain",)).get_content()).group(1)


RESET_REQUEST = "mutation($e: String!) { requestPasswordReset(email: $e) }"
RESET = "mutation($t: String!, $p: String!) { resetPassword(token: $t, newPassword: $p) }"


async def test_password_reset_by_mail(mail_settings, smtp_server):
    app = create_app(mail_settings)
    async with app.router.lifespan_context(app):
        client = GraphQL(app)
        mira, _ = await holder_and_admin(client)
        refresh = (
            await client.data(
                'mutation($p: String!) { login(username: "mira", password: $p) { refreshToken } }',
                variables={"p": USER_PASSWORD},
            )
        )["login"]["refreshToken"]
        for email in ["MIRA@studio.example", "nobody@studio.example"]:
            answer = await client.data(RESET_REQUEST, variables={"e": email})
            assert answer == {"requestPasswordReset": True}  # the same for unknown addresses
        await app.state.services.jobs.run_pending()
        [message] = smtp_server.messages
        assert message["To"] == "mira@studio.example"
        assert "https://locks.studio.example/reset-password?token=hfa_" in (
            message.get_body(("html",)).get_content()
        )
        token = link_in(message)
        body = (
            await client.http.post(
                "/graphql", json={"query": RESET, "variables": {"t": token, "p": "short"}}
            )
        ).json()
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        await client.data(RESET, variables={"t": token, "p": "brand-new-password"})
        again = (
            await client.http.post(
                "/graphql",
                json={"query": RESET, "variables": {"t": token, "p": "another-password-1"}},
            )
        ).json()
        assert again["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "token"}
        assert await access_token(client, "mira", "brand-new-password")
        refused = (
            await client.http.post(
                "/graphql",
                json={
                    "query": "mutation($t: String!) { refreshToken(refreshToken: $t) "
                    "{ accessToken } }",
                    "variables": {"t": refresh},
                },
            )
        ).json()
        assert refused["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert mira


async def test_email_change_is_confirmed_from_the_new_address(mail_settings, smtp_server):
    app = create_app(mail_settings)
    change = """mutation($e: String!, $p: String!) { requestEmailChange(newEmail: $e,
        currentPassword: $p) }"""
    async with app.router.lifespan_context(app):
        client = GraphQL(app)
        mira, _ = await holder_and_admin(client)
        wrong = (
            await client.http.post(
                "/graphql",
                json={
                    "query": change,
                    "variables": {"e": "mira@new.example", "p": "wrong-password"},
                },
                headers={"Authorization": f"Bearer {mira}"},
            )
        ).json()
        assert wrong["errors"][0]["extensions"]["field"] == "currentPassword"
        await client.data(change, {"e": "mira@new.example", "p": USER_PASSWORD}, token=mira)
        await app.state.services.jobs.run_pending()
        [confirm] = smtp_server.messages
        assert confirm["To"] == "mira@new.example"
        me = await client.data("{ me { email } }", token=mira)
        assert me == {"me": {"email": "mira@studio.example"}}  # not before it is confirmed
        confirmed = await client.data(
            "mutation($t: String!) { confirmEmailChange(token: $t) { username } }",
            variables={"t": link_in(confirm)},
        )
        assert confirmed == {"confirmEmailChange": {"username": "mira"}}
        await app.state.services.jobs.run_pending()
        assert (await client.data("{ me { email } }", token=mira)) == {
            "me": {"email": "mira@new.example"}
        }
    told = smtp_server.messages[1]
    assert told["To"] == "mira@studio.example"
    assert "now uses mira@new.example" in told.get_body(("plain",)).get_content()


async def test_flows_that_need_mail_say_so_when_it_is_off(settings):
    app = create_app(settings.replace(run_jobs=False))
    async with app.router.lifespan_context(app):
        client = GraphQL(app)
        body = (
            await client.http.post(
                "/graphql", json={"query": RESET_REQUEST, "variables": {"e": "mira@studio.example"}}
            )
        ).json()
    error = body["errors"][0]
    assert error["extensions"] == {"code": "FORBIDDEN", "reason": "mail-off"}
    assert "mail" in error["message"]


async def test_holders_are_warned_before_expiry_and_told_after(mail_settings, smtp_server):
    from datetime import timedelta

    app = create_app(mail_settings)
    async with app.router.lifespan_context(app):
        client = GraphQL(app)
        mira, _ = await holder_and_admin(client)
        acquire = """mutation($p: String!, $t: Int) { acquireLock(project: "default", path: $p,
            ttlSeconds: $t) { id } }"""
        await client.data(acquire, {"p": "Soon.uasset", "t": 300}, token=mira)
        await client.data(acquire, {"p": "Later.uasset", "t": 7200}, token=mira)
        await client.data(acquire, {"p": "Gone.uasset", "t": 1}, token=mira)
        await asyncio.sleep(1.2)
        locks = app.state.services.locks
        assert await locks.expire_due(warn_before=timedelta(minutes=10)) == 1
        assert await locks.expire_due(warn_before=timedelta(minutes=10)) == 0  # warned once
        await app.state.services.jobs.run_pending()
    subjects = sorted(message["Subject"] for message in smtp_server.messages)
    assert subjects == [
        "Your lock on Gone.uasset expired",
        "Your lock on Soon.uasset expires in 5 minutes",
    ]


WATCH = """mutation($p: String!) { watch(project: "default", pathPrefix: $p) {
    pathPrefix project { slug } } }"""


async def test_watchers_are_told_when_a_watched_path_is_locked_or_released(
    mail_settings, smtp_server
):
    app = create_app(mail_settings)
    async with app.router.lifespan_context(app):
        client = GraphQL(app)
        mira, admin = await holder_and_admin(client)
        watched = await client.data(WATCH, {"p": "content/maps/"}, token=admin)
        assert watched == {"watch": {"pathPrefix": "content/maps/", "project": {"slug": "default"}}}
        await client.data(WATCH, {"p": "content/maps/"}, token=admin)  # watching twice is one watch
        await client.data(WATCH, {"p": ""}, token=mira)
        mine = await client.data("{ myWatches { pathPrefix } }", token=admin)
        assert mine == {"myWatches": [{"pathPrefix": "content/maps/"}]}
        acquire = 'mutation($p: String!) { acquireLock(project: "default", path: $p) { id } }'
        release = 'mutation($p: String!) { releaseLock(project: "default", path: $p) { id } }'
        await client.data(acquire, {"p": "Content/Maps/Arena.umap"}, token=mira)
        await client.data(acquire, {"p": "Content/Chars/Hero.uasset"}, token=mira)
        await client.data(release, {"p": "Content/Maps/Arena.umap"}, token=mira)
        await client.data(acquire, {"p": "Content/Maps/Sky.umap"}, token=admin)  # mira watches all
        unwatch = 'mutation { unwatch(project: "default", pathPrefix: "content/maps/") }'
        assert await client.data(unwatch, token=admin) == {"unwatch": True}
        assert await client.data(unwatch, token=admin) == {"unwatch": False}
        await client.data(acquire, {"p": "Content/Maps/Cave.umap"}, token=mira)
        await app.state.services.jobs.run_pending()
    received = sorted((m["To"], m["Subject"]) for m in smtp_server.messages)
    assert received == [
        ("admin@example.com", "Content/Maps/Arena.umap is free again"),
        ("admin@example.com", "mira locked Content/Maps/Arena.umap"),
        ("mira@studio.example", "admin locked Content/Maps/Sky.umap"),
    ]


@pytest.mark.parametrize(("policy", "expected"), [("none", 0), ("everyone", 1)])
async def test_the_alert_policy(mail_settings, smtp_server, policy, expected):
    app = create_app(mail_settings.replace(lock_alerts=policy))
    async with app.router.lifespan_context(app):
        client = GraphQL(app)
        mira, admin = await holder_and_admin(client)
        await client.data(WATCH, {"p": ""}, token=admin)
        await client.data(ACQUIRE, token=mira)
        await app.state.services.jobs.run_pending()
    assert [m["To"] for m in smtp_server.messages] == ["admin@example.com"] * expected


async def test_a_message_is_marked_failed_when_its_attempts_run_out(mail_settings, smtp_server):
    from sqlalchemy import update

    from db.base import utcnow
    from db.jobs import Job
    from domain.notify import SEND_ATTEMPTS

    down = mail_settings.replace(smtp_port=free_port())
    app = create_app(down)
    async with app.router.lifespan_context(app):
        client = GraphQL(app)
        mira, admin = await holder_and_admin(client)
        await client.data(ACQUIRE, token=mira)
        await client.data(REQUEST, token=admin)
        for _ in range(SEND_ATTEMPTS):
            async with app.state.db.transaction() as session:
                await session.execute(update(Job).values(run_after=utcnow()))
            await app.state.services.jobs.run_pending()
    [message] = await outbox(down)
    assert (message.status, message.attempts) == ("failed", SEND_ATTEMPTS)
