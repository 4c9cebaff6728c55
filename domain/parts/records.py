"""What a part may hold, its workflow's stages and events, and how it reads in the audit log."""

from __future__ import annotations

import enum
from typing import Any

from db.parts import PART_CLAIMS, PART_STREAM, Part
from domain.checks import Invalid, Kind, camel, choice, count, https_url, text
from domain.streams import EventSource


class PartKind(enum.StrEnum):
    CNC = "CNC"
    HAND = "HAND"
    MISC = "MISC"


class PartStage(enum.StrEnum):
    REVIEW = "REVIEW"
    CNC = "CNC"
    HAND = "HAND"
    MISC = "MISC"
    COMPLETED = "COMPLETED"


class PartEventKind(enum.StrEnum):
    CREATED = "CREATED"
    UPDATED = "UPDATED"
    APPROVED = "APPROVED"
    CLAIMED = "CLAIMED"
    UNCLAIMED = "UNCLAIMED"
    RELEASE_REQUESTED = "RELEASE_REQUESTED"
    COMPLETED = "COMPLETED"
    REVERTED = "REVERTED"
    DELETED = "DELETED"


PART_EVENTS = EventSource(scope=PART_STREAM, table=PART_CLAIMS)

MAKING = frozenset({PartStage.CNC, PartStage.HAND, PartStage.MISC})
"""The stages in which a part is made (and may be claimed)."""


def making_stage(kind: str) -> PartStage:
    """Where an approved (or reverted) part of this kind is made."""
    return PartStage(kind)


STARTED = "already started"
"""The status an unclaimed part gets when work on it began (a hand worker was logged)."""

MAX_MESSAGE_LENGTH = 500


def _flag(value: Any) -> bool | None:
    if value is None:
        return None
    if not isinstance(value, bool):
        raise Invalid("must be true or false")
    return value


PART = Kind(
    "part",
    Part,
    {
        "name": text(200, required=True),
        "kind": choice(PartKind),
        "subsystem": text(100),
        "material": text(100),
        "material_thickness": text(50),
        "quantity": count(low=1, high=100_000),
        "notes": text(10_000),
        "onshape_url": https_url,
        "status": text(200),
        "completed_incorrectly": _flag,
    },
    frozenset({"name", "kind"}),
    {},
)

RECORDED = (
    "short_id",
    "name",
    "kind",
    "stage",
    "status",
    "subsystem",
    "material",
    "material_thickness",
    "quantity",
    "notes",
    "onshape_url",
    "reviewer_id",
    "completed_at",
    "completed_incorrectly",
)


def describe(part: Part, claimer: str | None = None) -> dict[str, Any]:
    """A part as the API names its fields, for audit entries."""
    values: dict[str, Any] = {"id": str(part.id)}
    for name in RECORDED:
        value = getattr(part, name)
        values[camel(name)] = str(value) if name.endswith("_id") and value is not None else value
    values["claimedBy"] = claimer
    values["version"] = part.version
    return values
