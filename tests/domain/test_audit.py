"""`audit.record`, the one call every area makes: the entry lives and dies with the caller's
transaction, values are stored JSON-safe, secrets masked at any depth, and the origin comes
from the context variable the server sets."""

from __future__ import annotations

import enum
import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select

from db.audit import AuditEntry
from db.engine import Database
from db.identity import User
from domain import audit
from domain.people import UserRef


class Status(enum.Enum):
    ACTIVE = "active"
    RETIRED = "retired"


@pytest.fixture
async def db(settings):
    database = Database(settings.database_url)
    yield database
    await database.dispose()


async def stored(db) -> list[AuditEntry]:
    async with db.read() as session:
        return list((await session.execute(select(AuditEntry).order_by(AuditEntry.id))).scalars())


async def test_an_entry_commits_or_rolls_back_with_the_change(db):
    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            audit.record(
                session,
                actor=None,
                action="create",
                resource_type="gpu",
                resource_id=1,
                after={"serial": "A1"},
            )
            raise RuntimeError("the change failed")
    assert await stored(db) == []
    async with db.transaction() as session:
        audit.record(
            session,
            actor=None,
            action="create",
            resource_type="gpu",
            resource_id=1,
            after={"serial": "A1"},
        )
    [entry] = await stored(db)
    assert (entry.actor_id, entry.actor_username, entry.resource_id) == (None, None, "1")


async def test_values_are_json_safe_and_only_changed_fields_are_kept(db):
    moment = datetime(2026, 12, 1, 10, 30, tzinfo=UTC)
    before = {
        "status": Status.ACTIVE,
        "price": Decimal("2.50"),
        "tags": {"b", "a"},
        "ports": (80, 443),
        "since": moment,
        "day": date(2026, 12, 1),
        "name": "same",
    }
    after = {**before, "status": Status.RETIRED, "price": Decimal("3.00"), "tags": {"a"}}
    actor = UserRef(7, "mira", "user", True)
    async with db.transaction() as session:
        audit.record(
            session,
            actor=actor,
            action="update",
            resource_type="server",
            resource_id="s-1",
            before=before,
            after=after,
        )
        audit.record(
            session,
            actor=actor,
            action="update",
            resource_type="server",
            resource_id="s-1",
            before=before,
            after=dict(before),
        )
        audit.record(
            session,
            actor=actor,
            action="claim",
            resource_type="server",
            resource_id="s-1",
            before=before,
            after=dict(before),
        )
        audit.record(
            session,
            actor=actor,
            action="delete",
            resource_type="server",
            resource_id="s-1",
            before=before,
        )
    updated, claimed, deleted = await stored(db)
    assert (updated.actor_id, updated.actor_username) == (7, "mira")
    assert json.loads(updated.changes) == {
        "status": ["active", "retired"],
        "price": ["2.50", "3.00"],
        "tags": [["a", "b"], ["a"]],
    }
    assert updated.snapshot is None
    assert claimed.action == "claim" and claimed.changes is None
    assert deleted.changes is None
    assert json.loads(deleted.snapshot) == {
        "status": "active",
        "price": "2.50",
        "tags": ["a", "b"],
        "ports": [80, 443],
        "since": "2026-12-01T10:30:00+00:00",
        "day": "2026-12-01",
        "name": "same",
    }


async def test_secrets_are_masked_at_any_depth_and_never_stored(db):
    user = User(id=3, username="ops")
    async with db.transaction() as session:
        audit.record(
            session,
            actor=user,
            action="update",
            resource_type="service",
            resource_id=9,
            before={"smtp_password": "old-pass", "config": {"api_key": None, "port": 1}},
            after={"smtp_password": "new-pass", "config": {"api_key": "k-123", "port": 2}},
        )
        audit.record(
            session,
            actor=user,
            action="delete",
            resource_type="service",
            resource_id=9,
            before={"Authorization": "Bearer b-456", "token_hash": "abc", "name": "svc"},
        )
    changed, deleted = await stored(db)
    assert json.loads(changed.changes) == {
        "smtp_password": ["(secret)", "(secret)"],
        "config": [{"api_key": None, "port": 1}, {"api_key": "(secret)", "port": 2}],
    }
    assert json.loads(deleted.snapshot) == {
        "Authorization": "(secret)",
        "token_hash": "(secret)",
        "name": "svc",
    }
    text = changed.changes + deleted.snapshot
    for secret in ("old-pass", "new-pass", "k-123", "b-456", "abc"):
        assert secret not in text


async def test_the_origin_comes_from_the_context(db):
    token = audit.ORIGIN.set(audit.Origin("198.51.100.4", "req-9"))
    try:
        async with db.transaction() as session:
            audit.record(
                session,
                actor=None,
                action="create",
                resource_type="part",
                resource_id=1,
                after={"name": "bracket"},
            )
    finally:
        audit.ORIGIN.reset(token)
    async with db.transaction() as session:
        audit.record(
            session,
            actor=None,
            action="create",
            resource_type="part",
            resource_id=2,
            after={"name": "hinge"},
        )
    inside, outside = await stored(db)
    assert (inside.client_address, inside.request_id) == ("198.51.100.4", "req-9")
    assert (outside.client_address, outside.request_id) == (None, None)
