"""The words of every message Holdfast mails: a text part and an HTML part each."""

from __future__ import annotations

import html
from dataclasses import dataclass

from domain.streams import Change


@dataclass(frozen=True)
class Mail:
    subject: str
    text: str
    html: str


def lock_alert(change: Change, project_slug: str, public_url: str) -> Mail | None:
    """What the holder of a lock is told when someone else (or time) acts on it; None:
    nothing to tell."""
    event, actor = change.event, change.actor
    board = f"{public_url.rstrip('/')}/?project={project_slug}"
    if event.kind == "EXPIRED":
        subject = f"Your lock on {event.path} expired"
        lead = f"Your lock on {event.path} in {project_slug} was released: {event.message}."
    elif actor is None or actor.id == change.holder.id:
        return None
    elif event.kind == "FORCE_RELEASED":
        subject = f"Your lock on {event.path} was released by {actor.username}"
        lead = f"{actor.username} force-released your lock on {event.path} in {project_slug}."
    elif event.kind == "RELEASE_REQUESTED":
        subject = f"{actor.username} asks you to release {event.path}"
        lead = f"{actor.username} asks you to release your lock on {event.path} in {project_slug}."
    else:
        return None
    note = f'\n\nTheir message: "{event.message}"' if event.message else ""
    text = f"{lead}{note}\n\nSee who holds what: {board}\n"
    quoted = f"<p>Their message: <q>{html.escape(event.message)}</q></p>" if event.message else ""
    body = (
        f"<p>{html.escape(lead)}</p>{quoted}"
        f'<p><a href="{html.escape(board)}">See who holds what</a></p>'
    )
    return Mail(subject, text, f"<!doctype html><html><body>{body}</body></html>")


def link_mail(subject: str, lead: str, link: str, action: str, footer: str) -> Mail:
    """A message whose point is one link (password reset, email confirmation)."""
    text = f"{lead}\n\n{action}: {link}\n\n{footer}\n"
    body = (
        f"<p>{html.escape(lead)}</p>"
        f'<p><a href="{html.escape(link)}">{html.escape(action)}</a></p>'
        f"<p>{html.escape(footer)}</p>"
    )
    return Mail(subject, text, f"<!doctype html><html><body>{body}</body></html>")


def notice_mail(subject: str, lead: str) -> Mail:
    return Mail(
        subject, f"{lead}\n", f"<!doctype html><html><body><p>{html.escape(lead)}</p></body></html>"
    )


def expiry_warning(path: str, project_slug: str, minutes: int, public_url: str) -> Mail:
    board = f"{public_url.rstrip('/')}/?project={project_slug}"
    lead = (
        f"Your lock on {path} in {project_slug} expires in about {minutes} minutes. "
        "Renew it if you still need it."
    )
    body = f'<p>{html.escape(lead)}</p><p><a href="{html.escape(board)}">See who holds what</a></p>'
    return Mail(
        f"Your lock on {path} expires in {minutes} minutes",
        f"{lead}\n\nSee who holds what: {board}\n",
        f"<!doctype html><html><body>{body}</body></html>",
    )


def watch_alert(change: Change, project_slug: str, public_url: str) -> Mail:
    """For someone watching the path: who locked or unlocked it."""
    event, actor = change.event, change.actor
    board = f"{public_url.rstrip('/')}/?project={project_slug}"
    if event.kind == "ACQUIRED":
        subject = f"{change.holder.username} locked {event.path}"
    else:
        subject = f"{event.path} is free again"
    who = actor.username if actor else "time"
    lead = f"{subject} in {project_slug} ({event.kind.lower().replace('_', ' ')} by {who})."
    body = f'<p>{html.escape(lead)}</p><p><a href="{html.escape(board)}">See who holds what</a></p>'
    return Mail(
        subject,
        f"{lead}\n\nSee who holds what: {board}\n",
        f"<!doctype html><html><body>{body}</body></html>",
    )


def gpu_alert(change: Change, public_url: str) -> Mail | None:
    """What the holder of a GPU is told when someone else acts on their hold; None: nothing."""
    event, actor = change.event, change.actor
    if actor is None or change.holder is None or actor.id == change.holder.id:
        return None
    gpu = f"the GPU {event.serial} ({event.model})"
    if event.kind == "FORCE_RELEASED":
        subject = f"{actor.username} released your GPU {event.serial}"
        lead = f"{actor.username} force-released your hold on {gpu}."
    elif event.kind == "RELEASE_REQUESTED":
        subject = f"{actor.username} asks you to release the GPU {event.serial}"
        lead = f"{actor.username} asks you to release {gpu}."
    elif event.kind == "ASSIGNED":
        subject = f"{actor.username} assigned you the GPU {event.serial}"
        due = f", due back {event.due_back:%Y-%m-%d %H:%M} UTC" if event.due_back else ""
        lead = f"{actor.username} assigned {gpu} to you{due}."
    else:
        return None
    return _board_mail(subject, lead, event.message, f"{public_url.rstrip('/')}/?page=assets")


def gpu_overdue(serial: str, model: str, due_back, public_url: str) -> Mail:
    lead = (
        f"Your hold on the GPU {serial} ({model}) was due back at {due_back:%Y-%m-%d %H:%M} UTC. "
        "Release it if you are done, or ask an admin for more time."
    )
    return _board_mail(
        f"The GPU {serial} is overdue", lead, None, f"{public_url.rstrip('/')}/?page=assets"
    )


def _board_mail(subject: str, lead: str, message: str | None, board: str) -> Mail:
    note = f'\n\nTheir message: "{message}"' if message else ""
    quoted = f"<p>Their message: <q>{html.escape(message)}</q></p>" if message else ""
    body = (
        f"<p>{html.escape(lead)}</p>{quoted}"
        f'<p><a href="{html.escape(board)}">See who holds what</a></p>'
    )
    return Mail(
        subject,
        f"{lead}{note}\n\nSee who holds what: {board}\n",
        f"<!doctype html><html><body>{body}</body></html>",
    )


def part_alert(change: Change, public_url: str) -> Mail | None:
    """What a part's claimer is told when someone else unclaims it or asks for it."""
    event, actor = change.event, change.actor
    if actor is None or change.holder is None or actor.id == change.holder.id:
        return None
    part = f"{event.short_id} ({event.name})"
    if event.kind == "UNCLAIMED":
        subject = f"{actor.username} unclaimed your part {event.short_id}"
        lead = f"{actor.username} took back your claim on {part}."
    elif event.kind == "RELEASE_REQUESTED":
        subject = f"{actor.username} asks you to give up {event.short_id}"
        lead = f"{actor.username} asks you to unclaim {part}."
    else:
        return None
    return _board_mail(subject, lead, event.message, f"{public_url.rstrip('/')}/?page=parts")
