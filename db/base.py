"""Declarative base shared by every model: constraint names and UTC timestamps."""

from datetime import UTC, datetime

from sqlalchemy import DateTime, MetaData, TypeDecorator, func, select
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every dialect (SQLite stores no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


async def insert_unless_exists(session, model: type[Base], key: str | None, **values) -> None:
    """INSERT … ON CONFLICT (key) DO NOTHING, on SQLite and PostgreSQL alike (`key` None: the
    primary key)."""
    if session.bind.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    columns = [key] if key else [column.key for column in model.__table__.primary_key]
    await session.execute(
        insert(model).values(**values).on_conflict_do_nothing(index_elements=columns)
    )


async def counted(session, query) -> int:
    """How many rows `query` selects."""
    return (
        await session.execute(select(func.count()).select_from(query.order_by(None).subquery()))
    ).scalar_one()


async def page(session, query, limit: int) -> list:
    return list((await session.execute(query.limit(limit))).scalars())
