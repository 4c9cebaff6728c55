"""Runtime settings in the GraphQL schema (admins only)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.types import Info

from domain import settings as domain
from domain.settings import SECRET, SettingsView
from graph.context import Context


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


@strawberry.type(
    description="Effective values. `pinned` names the ones the environment fixes; `stored` "
    "the ones an admin set. The SMTP password is never shown."
)
class RuntimeSettings:
    lock_auto_release_hours: int
    lock_expiry_warning_minutes: int
    access_token_ttl: int = strawberry.field(description="Seconds.")
    registration: str
    smtp_host: str | None
    smtp_port: int
    smtp_username: str | None
    smtp_password_set: bool
    smtp_tls: str
    mail_from: str | None
    lock_alerts: str
    force_release_policy: str
    event_retention: int = strawberry.field(description="Seconds.")
    audit_retention_days: int = strawberry.field(
        description="Days the audit log keeps an entry; 0 = forever."
    )
    event_default_minutes: int = strawberry.field(
        description="How long an event at a venue without an end blocks its venue."
    )
    max_active_parkings_per_user: int
    parking_reservation_grace_minutes: int
    parking_reminder_days: int = strawberry.field(description="0 = no reminders.")
    pinned: list[str]
    stored: list[str]

    @classmethod
    def of(cls, view: SettingsView) -> RuntimeSettings:
        values = dict(view.values)
        password = values.pop(SECRET)
        return cls(
            **values,
            smtp_password_set=bool(password),
            pinned=sorted(_camel(name) for name in view.pinned),
            stored=sorted(_camel(name) for name in view.stored),
        )


@strawberry.input(description="Only the fields given change; null clears a text setting.")
class RuntimeSettingsInput:
    lock_auto_release_hours: int | None = strawberry.UNSET
    lock_expiry_warning_minutes: int | None = strawberry.UNSET
    access_token_ttl: int | None = strawberry.UNSET
    registration: str | None = strawberry.UNSET
    smtp_host: str | None = strawberry.UNSET
    smtp_port: int | None = strawberry.UNSET
    smtp_username: str | None = strawberry.UNSET
    smtp_password: str | None = strawberry.UNSET
    smtp_tls: str | None = strawberry.UNSET
    mail_from: str | None = strawberry.UNSET
    lock_alerts: str | None = strawberry.UNSET
    force_release_policy: str | None = strawberry.UNSET
    event_retention: int | None = strawberry.UNSET
    audit_retention_days: int | None = strawberry.UNSET
    event_default_minutes: int | None = strawberry.UNSET
    max_active_parkings_per_user: int | None = strawberry.UNSET
    parking_reservation_grace_minutes: int | None = strawberry.UNSET
    parking_reminder_days: int | None = strawberry.UNSET

    def given(self) -> dict[str, Any]:
        return {name: value for name, value in vars(self).items() if value is not strawberry.UNSET}


@strawberry.type
class SettingChange:
    name: str
    old_value: str | None
    new_value: str
    changed_by: str
    at: datetime

    @classmethod
    def of(cls, change: domain.SettingChange) -> SettingChange:
        return cls(
            name=_camel(change.name),
            old_value=change.old_value,
            new_value=change.new_value,
            changed_by=change.changed_by,
            at=change.at,
        )


@strawberry.type
class SettingsQuery:
    @strawberry.field
    async def runtime_settings(self, info: Info[Context, None]) -> RuntimeSettings:
        actor = await info.context.require_viewer()
        return RuntimeSettings.of(info.context.services.settings.view(actor))

    @strawberry.field(
        description="Who changed which setting when, newest first: the audit log's entries of "
        'resourceType "setting".'
    )
    async def setting_changes(
        self, info: Info[Context, None], first: int | None = 50
    ) -> list[SettingChange]:
        actor = await info.context.require_viewer()
        changes = await info.context.services.settings.changes(
            actor, 50 if first is None else first
        )
        return [SettingChange.of(change) for change in changes]


@strawberry.type
class SettingsMutation:
    @strawberry.mutation(description="Effective on every replica within a second.")
    async def update_runtime_settings(
        self, info: Info[Context, None], input: RuntimeSettingsInput
    ) -> RuntimeSettings:
        actor = await info.context.require_viewer()
        view = await info.context.services.settings.update(actor, input.given())
        return RuntimeSettings.of(view)
