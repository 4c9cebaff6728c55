"""Importing a workbook: every row checked as the API checks it, every reference and port
against the workbook and the inventory together, then the plan written in bulk."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from db import asset_workbook as store
from db.assets import Container, Datacenter, Environment, Gpu, Server, Service
from db.base import utcnow
from db.identity import User
from domain import audit, workbooks
from domain.assets.records import KINDS, RECORDED, describe, parse_ports
from domain.assets.workbook.sheets import CONTAINERS, SHEETS, SheetKind, Stored
from domain.checks import Invalid, text
from domain.errors import BadUserInput
from domain.workbooks import ImportProblem

_reference_name = text(100)


def _read_cell(value: Any, cell: str) -> Any:
    """A cell as the API would have been sent it: spreadsheets keep numbers as numbers (text
    that looks like one too, sometimes), and a name may look like a number."""
    if cell == "text":
        if isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        if isinstance(value, int | float):
            return str(value)
        return value
    if isinstance(value, str):
        try:
            value = float(value) if cell == "number" else int(value)
        except ValueError:
            return value
    if cell == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _problem_message(error: BadUserInput) -> str:
    field = error.extensions.get("field")
    prefix = f"{field}: "
    return (
        error.message[len(prefix) :]
        if field and error.message.startswith(prefix)
        else error.message
    )


@dataclass
class Wanted:
    """A workbook row that passed its checks."""

    number: int
    values: dict[str, Any]


def check_rows(
    sheet: SheetKind, rows: list[tuple[int, dict[str, Any]]], problems: list[ImportProblem]
) -> dict[Any, Wanted]:
    """The rows of a sheet that pass the API's checks, by natural key; a problem for every
    cell that does not, and for a key given twice."""
    kind = KINDS[sheet.kind]
    found: dict[Any, Wanted] = {}
    for number, cells in rows:
        values: dict[str, Any] = {}
        passed = True
        for column in sheet.columns:
            value = _read_cell(cells.get(column.header), column.cell)
            try:
                if column.field is None:
                    values[column.header] = _reference(value, column.required)
                    continue
                if column.header == "ports":
                    value = parse_ports(value)
                values[column.header] = kind.checked({column.field: value}, creating=False)[
                    column.field
                ]
            except Invalid as error:
                problems.append(ImportProblem(sheet.sheet, number, column.header, str(error)))
                passed = False
            except BadUserInput as error:
                problems.append(
                    ImportProblem(sheet.sheet, number, column.header, _problem_message(error))
                )
                passed = False
        if not passed:
            continue
        key = tuple(values[name] for name in sheet.key)
        key = key[0] if len(key) == 1 else key
        if key in found:
            problems.append(
                ImportProblem(
                    sheet.sheet,
                    number,
                    sheet.key[-1],
                    f"the same {' and '.join(sheet.key)} as row {found[key].number}",
                )
            )
            continue
        found[key] = Wanted(number, values)
    return found


def _reference(value: Any, required: bool) -> str | None:
    name = _reference_name(value)
    if name is None and required:
        raise Invalid("is required")
    return name


REFERENCES: dict[str, tuple[tuple[str, str], ...]] = {
    "server": (("datacenter", "datacenter"), ("environment", "environment")),
    "container": (("server", "server"), ("environment", "environment")),
    "service": (("server", "server"), ("container", "container")),
    "gpu": (("server", "server"),),
}
"""Each kind's references: (column, the kind it names)."""


@dataclass
class Plan:
    """What an import would do, per kind: rows to create, and to update (with the row they
    change)."""

    wanted: dict[str, dict[Any, Wanted]]
    create: dict[str, list[Any]]
    update: dict[str, list[Any]]
    unchanged: int


def plan(read: workbooks.ReadWorkbook, stored: Stored) -> tuple[Plan | None, list[ImportProblem]]:
    """Check every row, then every reference and port against the workbook and the
    inventory together; with no problem, what to create and update."""
    problems = list(read.problems)
    wanted: dict[str, dict[Any, Wanted]] = {}
    for sheet in SHEETS:
        given = read.sheets.get(sheet.sheet)
        wanted[sheet.kind] = check_rows(sheet, given.rows if given else [], problems)

    def known(kind: str, key: Any) -> bool:
        return key in wanted[kind] or key in stored.rows[kind]

    for sheet in SHEETS:
        for row in wanted[sheet.kind].values():
            for column, kind in REFERENCES.get(sheet.kind, ()):
                name = row.values[column]
                if name is None:
                    continue
                if kind == "container":
                    server = row.values["server"]
                    if not known("server", server):
                        continue  # the server's own problem says it
                    key, what = (server, name), f"container {name!r} on the server {server!r}"
                else:
                    key, what = name, f"{kind} named {name!r}"
                if not known(kind, key):
                    problems.append(
                        ImportProblem(
                            sheet.sheet,
                            row.number,
                            column,
                            f"there is no {what} in the workbook or the inventory",
                        )
                    )
    _check_ports(wanted["container"], stored, problems)
    if problems:
        return None, problems

    result = Plan(wanted, {}, {}, 0)
    for sheet in SHEETS:
        current = stored.rows[sheet.kind]
        result.create[sheet.kind], result.update[sheet.kind] = [], []
        for key, row in wanted[sheet.kind].items():
            if key not in current:
                result.create[sheet.kind].append(key)
            elif current[key] != row.values:
                result.update[sheet.kind].append(key)
            else:
                result.unchanged += 1
    return result, []


def _check_ports(
    containers: dict[Any, Wanted], stored: Stored, problems: list[ImportProblem]
) -> None:
    """No host port and protocol published twice on a server, once the import is done (the
    containers of the workbook replace those of the inventory with the same key)."""
    taken: dict[tuple[str, int, str], str] = {}
    for key, values in stored.rows["container"].items():
        if key in containers:
            continue
        for port in values["ports"]:
            taken[(key[0], port["host_port"], port["protocol"])] = key[1]
    for (server, name), row in containers.items():
        for port in row.values["ports"]:
            slot = (server, port["host_port"], port["protocol"])
            other = taken.get(slot)
            if other is not None and other != name:
                problems.append(
                    ImportProblem(
                        CONTAINERS.sheet,
                        row.number,
                        "ports",
                        f"host port {slot[1]}/{slot[2].lower()} is also published by the"
                        f" container {other!r} on the server {server!r}",
                    )
                )
            taken[slot] = name


# -- writing ----------------------------------------------------------------------------------

COLUMNS = {
    kind: tuple(name for name in names if not name.endswith("_id"))
    for kind, names in RECORDED.items()
}
"""Each kind's own columns (references are resolved apart)."""
"""Each kind's own columns, as the workbook and the table name them alike."""
MODELS = {
    "datacenter": Datacenter,
    "environment": Environment,
    "server": Server,
    "container": Container,
    "service": Service,
    "gpu": Gpu,
}


class Writer:
    """Writes a plan kind by kind, parents first, in the caller's transaction."""

    def __init__(self, session: AsyncSession, actor: User, stored: Stored, planned: Plan):
        self.session, self.actor, self.stored, self.plan = session, actor, stored, planned
        self.now = utcnow()
        self.ids: dict[str, dict[Any, int]] = {}
        """kind → natural key → id, for references."""
        self.created: dict[str, dict[Any, int]] = {}
        """kind → natural key → id of the rows this import created."""

    async def write(self) -> None:
        await self._kind("datacenter", lambda values: {})
        await self._kind("environment", lambda values: {})
        self.ids["datacenter"] = await store.ids_by_key(self.session, Datacenter, "name")
        self.ids["environment"] = await store.ids_by_key(self.session, Environment, "name")
        await self._kind(
            "server",
            lambda values: {
                "datacenter_id": self.ids["datacenter"][values["datacenter"]],
                "environment_id": self._environment(values),
            },
        )
        self.ids["server"] = await store.ids_by_key(self.session, Server, "name")
        await self._kind(
            "container",
            lambda values: {
                "server_id": self.ids["server"][values["server"]],
                "environment_id": self._environment(values),
            },
        )
        containers = await store.ids_by_key(self.session, Container, "server_id", "name")
        server_names = {row_id: name for name, row_id in self.ids["server"].items()}
        self.ids["container"] = {
            (server_names[server_id], name): row_id
            for (server_id, name), row_id in containers.items()
        }
        await self._kind(
            "service",
            lambda values: {
                "container_id": self.ids["container"][(values["server"], values["container"])]
            },
        )
        await self._kind(
            "gpu",
            lambda values: {
                "server_id": None
                if values["server"] is None
                else self.ids["server"][values["server"]]
            },
        )
        await self._extras()
        await self.session.flush()

    def _environment(self, values: dict[str, Any]) -> int | None:
        name = values["environment"]
        return None if name is None else self.ids["environment"][name]

    async def _kind(self, kind: str, references: Callable[[dict[str, Any]], dict]) -> None:
        model, wanted = MODELS[kind], self.plan.wanted[kind]

        def columns(key: Any) -> dict[str, Any]:
            values = wanted[key].values
            return {**{name: values[name] for name in COLUMNS[kind]}, **references(values)}

        created = {key: columns(key) for key in self.plan.create[kind]}
        updated = {
            key: {"id": self.stored.records[kind][key]["id"], **columns(key)}
            for key in self.plan.update[kind]
        }
        await store.insert_rows(self.session, model, list(created.values()), self.now)
        await store.update_rows(self.session, model, list(updated.values()), self.now)
        ids = await self._new_ids(kind, model, created) if created else {}
        for key, record in created.items():
            self._audit(kind, key, None, {**record, "id": ids[key], "version": 1})
        for key, record in updated.items():
            before = self.stored.records[kind][key]
            self._audit(kind, key, before, {**before, **record, "version": before["version"] + 1})
        self.created[kind] = ids

    async def _new_ids(self, kind: str, model, created: dict) -> dict[Any, int]:
        if kind == "container":
            by_key = await store.ids_by_key(self.session, model, "server_id", "name")
            return {key: by_key[(row["server_id"], row["name"])] for key, row in created.items()}
        if kind == "service":
            by_key = await store.ids_by_key(self.session, model, "container_id", "name")
            return {key: by_key[(row["container_id"], row["name"])] for key, row in created.items()}
        column = "serial" if kind == "gpu" else "name"
        by_key = await store.ids_by_key(self.session, model, column)
        return {key: by_key[row[column]] for key, row in created.items()}

    def _audit(self, kind: str, key: Any, before: dict | None, after: dict) -> None:
        extra_before, extra_after = {}, {}
        if kind == "server":
            extra_after["tags"] = self.plan.wanted[kind][key].values["tags"]
            if before is not None:
                extra_before["tags"] = sorted(self.stored.tags.get(before["id"], []))
        elif kind == "container":
            extra_after["ports"] = self.plan.wanted[kind][key].values["ports"]
            if before is not None:
                extra_before["ports"] = self.stored.ports.get(before["id"], [])
        audit.record(
            self.session,
            actor=self.actor,
            action="create" if before is None else "update",
            resource_type=kind,
            resource_id=after["id"],
            before=None
            if before is None
            else describe(kind, SimpleNamespace(**before), **extra_before),
            after=describe(kind, SimpleNamespace(**after), **extra_after),
        )

    async def _extras(self) -> None:
        """Tags of the servers and ports of the containers created or changed."""
        servers = [
            *self.created["server"].items(),
            *(
                (key, self.stored.records["server"][key]["id"])
                for key in self.plan.update["server"]
            ),
        ]
        await store.replace_tags(
            self.session,
            [row_id for _, row_id in servers],
            {row_id: self.plan.wanted["server"][key].values["tags"] for key, row_id in servers},
        )
        containers = [
            *self.created["container"].items(),
            *(
                (key, self.stored.records["container"][key]["id"])
                for key in self.plan.update["container"]
            ),
        ]
        await store.replace_ports(
            self.session,
            [(row_id, self.ids["server"][key[0]]) for key, row_id in containers],
            {
                row_id: self.plan.wanted["container"][key].values["ports"]
                for key, row_id in containers
            },
        )
