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
    return _board_mail(subject, lead, event.message, board)


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


def spot_alert(change: Change, public_url: str) -> Mail | None:
    """What the holder of a parking spot is told when someone else (or time) acts on it."""
    event, actor = change.event, change.actor
    if change.holder is None or event.spot_booking_id is None:
        return None
    board = f"{public_url.rstrip('/')}/?page=parking"
    spot = f"spot {event.spot_number}"
    if event.kind == "EXPIRED":
        subject = f"Your reservation of {spot} expired"
        lead = f"Your reservation of {spot} expired: {event.message}."
    elif actor is None or actor.id == change.holder.id:
        return None
    elif event.kind == "FORCE_RELEASED":
        subject = f"{actor.username} ended your booking of {spot}"
        lead = f"{actor.username} ended your booking of {spot}."
    elif event.kind == "RELEASE_REQUESTED":
        subject = f"{actor.username} asks you to free {spot}"
        lead = f"{actor.username} asks you to free {spot}."
    else:
        return None
    return _board_mail(subject, lead, event.message, board)


def parking_reminder(days: int, public_url: str) -> Mail:
    board = f"{public_url.rstrip('/')}/?page=parking"
    lead = f"You have not parked for {days} days. A spot is waiting: park or reserve one ahead."
    return link_mail(
        "Park with us again", lead, board, "See free spots", "You get this at most once a day."
    )


def parking_report(month: str, rows: list[tuple[str, int, str, str, str]]) -> Mail:
    """The monthly report to admins: per lot (name, stays, occupied hours, occupancy %,
    revenue)."""
    subject = f"Parking report for {month}"
    lines = [
        f"{name}: {stays} stays, {hours} h, {share} occupied, revenue {revenue}"
        for name, stays, hours, share, revenue in rows
    ]
    text = f"Parking in {month} (UTC), per lot:\n\n" + ("\n".join(lines) or "No lots.") + "\n"
    cells = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(value))}</td>" for value in row) + "</tr>"
        for row in rows
    )
    body = (
        f"<h1>{html.escape(subject)}</h1>"
        "<table><thead><tr><th>Lot</th><th>Stays</th><th>Occupied hours</th>"
        f"<th>Occupancy</th><th>Revenue</th></tr></thead><tbody>{cells}</tbody></table>"
    )
    return Mail(subject, text, f"<!doctype html><html><body>{body}</body></html>")


def export_ready(what: str, job_id: int, days: int, public_url: str) -> Mail:
    lead = (
        f"Your export of {what} is ready (job {job_id}). Ask Holdfast for the job's download; "
        f"the file is kept for {days} days."
    )
    return link_mail(
        f"Your {what} export is ready", lead, public_url.rstrip("/") + "/", "Open Holdfast", ""
    )
