"""The experiment database: participants and trials, through SQLAlchemy (SQLite or PostgreSQL).

Internal module: the server and the export use it; the tables are the interface
(``metamers experiment export`` writes them as files).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from metamers.errors import ConfigError

__all__ = ["Base", "Participant", "Trial", "default_url", "open_database"]

DATABASE_FILE = "experiment.sqlite"


def now() -> datetime:
    """The current time, in UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of the experiment tables."""


class Participant(Base):
    """One person taking the study (one row per recruitment id, ever)."""

    __tablename__ = "participants"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    participant_id: Mapped[str] = mapped_column(String(128), unique=True, index=True)
    token: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    source: Mapped[str] = mapped_column(String(16))
    study_id: Mapped[str | None] = mapped_column(String(128))
    session_id: Mapped[str | None] = mapped_column(String(128))
    assignment_id: Mapped[str | None] = mapped_column(String(128))
    hit_id: Mapped[str | None] = mapped_column(String(128))
    submit_to: Mapped[str | None] = mapped_column(String(256))
    list_index: Mapped[int] = mapped_column(Integer, default=0)
    order_seed: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="started")
    consented_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    screening_correct: Mapped[int | None] = mapped_column(Integer)
    headphone_correct: Mapped[int | None] = mapped_column(Integer)
    user_agent: Mapped[str | None] = mapped_column(String(512))
    environment: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    timeline: Mapped[list[dict[str, Any]]] = mapped_column(JSON)


class Trial(Base):
    """One answered trial, saved when the browser sends it."""

    __tablename__ = "trials"
    __table_args__ = (UniqueConstraint("participant_pk", "trial_index", name="one_answer"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    participant_pk: Mapped[int] = mapped_column(ForeignKey("participants.pk"), index=True)
    trial_index: Mapped[int] = mapped_column(Integer)
    phase: Mapped[str] = mapped_column(String(16))
    stimulus_id: Mapped[str] = mapped_column(String(32))
    item: Mapped[str] = mapped_column(String(256))
    condition: Mapped[str] = mapped_column(String(256))
    catch: Mapped[bool] = mapped_column(Boolean, default=False)
    answer: Mapped[str] = mapped_column(String(128))
    response: Mapped[str] = mapped_column(String(128))
    correct: Mapped[bool] = mapped_column(Boolean)
    rt_ms: Mapped[float | None] = mapped_column(Float)
    timing: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    client_time: Mapped[float | None] = mapped_column(Float)
    saved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


def default_url(bundle: str | Path) -> str:
    """The SQLite database beside a bundle: ``sqlite:///BUNDLE/experiment.sqlite``."""
    return f"sqlite:///{Path(bundle).resolve() / DATABASE_FILE}"


def open_database(url: str) -> sessionmaker:
    """Connect (creating the tables if needed) and return a session factory.

    Parameters
    ----------
    url
        An SQLAlchemy URL: ``sqlite:///PATH`` or ``postgresql://USER@HOST:PORT/DB``
        (``postgresql+psycopg`` is used for the latter).

    Raises
    ------
    ConfigError
        The URL names another kind of database, or its driver is not installed.
    """
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 60},
            pool_size=20,
            max_overflow=40,
            pool_timeout=120,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
    elif url.startswith("postgresql+psycopg://"):
        try:
            engine = create_engine(
                url, pool_size=10, max_overflow=40, pool_timeout=120, pool_pre_ping=True
            )
        except ModuleNotFoundError:
            raise ConfigError(
                "PostgreSQL needs psycopg: pip install 'metamers[postgres]'"
            ) from None
    else:
        raise ConfigError(f"database URL {url.split(':', 1)[0]}: use sqlite:/// or postgresql://")
    Base.metadata.create_all(engine)
    return sessionmaker(engine, expire_on_commit=False)


def _sqlite_pragmas(connection: Any, record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL: a commit survives the process dying
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def engine_of(factory: sessionmaker) -> Engine:
    """The engine behind a session factory (to dispose of it)."""
    engine = factory.kw["bind"]
    assert isinstance(engine, Engine)
    return engine
