"""Mail about locks: the rule the mailer runs for every committed lock event (domain/notify.py),
and the warning before a lock expires."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from db import locks as store
from db import notify as notify_store
from db import projects as project_store
from db.identity import get_users
from db.projects import Project
from domain.mails import expiry_warning, lock_alert, watch_alert
from domain.notify import Notifier
from domain.paths import path_key
from domain.streams import Change

WATCHED_KINDS = {"ACQUIRED", "RELEASED", "FORCE_RELEASED", "EXPIRED"}


class LockMail:
    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier

    async def __call__(self, session: AsyncSession, stream_id: int, changes: list[Change]) -> None:
        """The mail these lock changes call for: to the holder when someone else (or time)
        acted on their lock, and to watchers (per the alert policy) of what was locked or
        released. Only active users get mail."""
        project = await project_store.get_project_by_stream(session, stream_id)
        if project is None:
            return
        public_url = self.notifier.public_url
        alerts = [
            (change, mail)
            for change in changes
            if (mail := lock_alert(change, project.slug, public_url)) is not None
        ]
        watched = await self.watchers(session, project, changes)
        ids = {change.holder.id for change, _ in alerts} | {
            user_id for users in watched.values() for user_id in users
        }
        users = {user.id: user for user in await get_users(session, ids) if user.active}
        for change, mail in alerts:
            if (holder := users.get(change.holder.id)) is not None:
                kind = f"lock-{change.event.kind.lower()}"
                await self.notifier.queue(session, kind, holder.email, mail)
        for change, watcher_ids in watched.items():
            mail = watch_alert(change, project.slug, public_url)
            for user_id in sorted(watcher_ids):
                if (watcher := users.get(user_id)) is not None:
                    await self.notifier.queue(session, "lock-watch", watcher.email, mail)

    async def watchers(
        self, session: AsyncSession, project: Project, changes: list[Change]
    ) -> dict[Change, set[int]]:
        """Who to tell of each lock taken or released, besides the one who did it."""
        relevant = [change for change in changes if change.event.kind in WATCHED_KINDS]
        policy = self.notifier.config.alert_policy
        if policy == "none" or not relevant:
            return {}
        if policy == "everyone":
            everyone = {user.id for user in await notify_store.active_users(session)}
            candidates = {change: set(everyone) for change in relevant}
        else:
            since = min(change.event.at for change in relevant)
            watches = await notify_store.watches_of_project(session, project.id, since)
            candidates = {
                change: {
                    watch.user_id
                    for watch in watches
                    if watch.active_at(change.event.at)
                    and path_key(change.event.path, project.case_sensitive).startswith(
                        path_key(watch.path_prefix, project.case_sensitive)
                    )
                }
                for change in relevant
            }
        for change, users in candidates.items():
            users.discard(change.actor.id if change.actor else None)
        return {change: users for change, users in candidates.items() if users}

    async def warn_expiring(self, session: AsyncSession, now: datetime, before: timedelta) -> None:
        """Warn holders whose locks expire before `now + before` (once per lock)."""
        locks = await store.locks_to_warn(session, now, now + before)
        holders = {
            user.id: user for user in await get_users(session, {lock.owner_id for lock in locks})
        }
        for lock in locks:
            lock.warned_at = now
            holder = holders.get(lock.owner_id)
            if holder is None or not holder.active:
                continue
            project = await project_store.get_project(session, lock.project_id)
            minutes = max(1, round((lock.expires_at - now).total_seconds() / 60))
            mail = expiry_warning(lock.path, project.slug, minutes, self.notifier.public_url)
            await self.notifier.queue(session, "lock-expiry-warning", holder.email, mail)
