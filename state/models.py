"""The state store's tables (SQLModel). Alembic migrations in ``state/migrations`` create them."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlalchemy.types import DateTime
from sqlmodel import Field, SQLModel


def _utc_column(*, nullable: bool = True) -> Column[dt.datetime]:
    return Column(DateTime(timezone=True), nullable=nullable)


class MetaRow(SQLModel, table=True):
    """Install-wide values: the key of the keyed hash for erased and suppressed addresses."""

    __tablename__ = "crmsync_meta"
    key: str = Field(primary_key=True, max_length=64)
    value: str = Field(sa_column=Column(Text, nullable=False))


class ContactRow(SQLModel, table=True):
    """A hub contact: the canonical fields every provider converges to."""

    __tablename__ = "contact"
    __table_args__ = (Index("ix_contact_dirty", "dirty", "id"),)  # push: the contacts that may need one
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, unique=True, index=True)
    fields: str = Field(sa_column=Column(Text, nullable=False))  # JSON: canonical fields, consent excluded
    sources: str = Field(sa_column=Column(Text, nullable=False))  # JSON: field -> [provider, time] that set it
    consent: str = Field(default="unknown", max_length=16)
    consent_at: dt.datetime | None = Field(default=None, sa_column=_utc_column())
    version: int = Field(default=1)  # +1 on every change; a link acked at an older version is behind
    updated_at: dt.datetime = Field(sa_column=_utc_column(nullable=False))
    # Set by every change that can leave a provider behind; cleared once none is (Store.settle_pushes). A push
    # asks only dirty contacts, so a cycle's cost follows what changed, not the size of the hub. ``touched``
    # counts those changes: a clear applies only if none came in since the contact was checked.
    dirty: bool = Field(default=True, sa_column_kwargs={"server_default": sa.true()})
    touched: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class LinkRow(SQLModel, table=True):
    """A hub contact's record at one provider, with the merge base both sides last agreed on."""

    __tablename__ = "link"
    __table_args__ = (
        UniqueConstraint("provider", "remote_id", name="uq_link_remote"),
        UniqueConstraint("provider", "contact_id", name="uq_link_contact"),
        Index("ix_link_observed", "provider", "has_observation"),
        Index("ix_link_waiting", "has_observation", "contact_id"),  # reconcile: contacts with observations
    )
    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(max_length=64)
    remote_id: str | None = Field(default=None, max_length=320)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    base: str | None = Field(default=None, sa_column=Column(Text))  # JSON: canonical projection agreed
    ack_hash: str | None = Field(default=None, max_length=64)
    acked_version: int = Field(default=0)
    observed: str | None = Field(default=None, sa_column=Column(Text))  # JSON: pulled, not yet reconciled
    observed_at: dt.datetime | None = Field(default=None, sa_column=_utc_column())
    has_observation: bool = Field(default=False)


class CursorRow(SQLModel, table=True):
    """Where reading a provider stream resumes; moved only with what it covers."""

    __tablename__ = "sync_cursor"
    provider: str = Field(primary_key=True, max_length=64)
    stream: str = Field(primary_key=True, max_length=160)
    value: str = Field(sa_column=Column(Text, nullable=False))
    done: bool = Field(default=False)  # migrations: the full read finished
    updated_at: dt.datetime = Field(sa_column=_utc_column(nullable=False))


class ConflictRow(SQLModel, table=True):
    """A field changed in several providers to different values since they last agreed."""

    __tablename__ = "conflict"
    __table_args__ = (Index("ix_conflict_open", "status", "contact_id"),)
    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id")
    field: str = Field(max_length=128)
    candidates: str = Field(sa_column=Column(Text, nullable=False))  # JSON: [{source, value, at}]
    status: str = Field(default="open", max_length=16)  # open | resolved | settled (a policy decided)
    resolution: str | None = Field(default=None, sa_column=Column(Text))
    created_at: dt.datetime = Field(sa_column=_utc_column(nullable=False))
    resolved_at: dt.datetime | None = Field(default=None, sa_column=_utc_column())


class ConsentEventRow(SQLModel, table=True):
    """The append-only consent ledger: who said what about a person's consent, and when."""

    __tablename__ = "consent_event"
    id: int | None = Field(default=None, primary_key=True)
    contact_id: int | None = Field(default=None, index=True)
    email_key: str = Field(max_length=64, index=True)  # keyed hash: the ledger outlives an erasure
    provider: str = Field(max_length=64)
    status: str = Field(max_length=16)
    occurred_at: dt.datetime | None = Field(default=None, sa_column=_utc_column())
    recorded_at: dt.datetime = Field(sa_column=_utc_column(nullable=False))
    evidence: str = Field(default="", max_length=200)


class SuppressionRow(SQLModel, table=True):
    """Addresses that must stay unsubscribed (``unsubscribe``) or never come back (``forget``)."""

    __tablename__ = "suppression"
    email_key: str = Field(primary_key=True, max_length=64)
    reason: str = Field(max_length=16)  # unsubscribed | forgotten
    created_at: dt.datetime = Field(sa_column=_utc_column(nullable=False))


class RunRow(SQLModel, table=True):
    """One sync or migration run and its per-provider figures."""

    __tablename__ = "run"
    id: str = Field(primary_key=True, max_length=36)
    kind: str = Field(max_length=16)
    started_at: dt.datetime = Field(sa_column=_utc_column(nullable=False))
    finished_at: dt.datetime | None = Field(default=None, sa_column=_utc_column())
    status: str = Field(default="running", max_length=16, index=True)  # running | ok | partial | failed | interrupted
    dry_run: bool = Field(default=False)
    figures: str = Field(default="{}", sa_column=Column(Text, nullable=False))  # JSON
    # The process running it ("host:pid:nonce", a daemon replica's lease holder id), the lease it runs under
    # (daemon cycles: "writer"; None for a CLI run), and when that process last said it was alive.
    owner: str | None = Field(default=None, max_length=128)
    lease: str | None = Field(default=None, max_length=160)
    heartbeat_at: dt.datetime | None = Field(default=None, sa_column=_utc_column())


class PendingWriteRow(SQLModel, table=True):
    """A write a provider has not accepted yet: retried in later cycles, shown by ``status``."""

    __tablename__ = "pending_write"
    __table_args__ = (UniqueConstraint("provider", "contact_id", name="uq_pending"),)
    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(max_length=64)
    contact_id: int = Field(foreign_key="contact.id")
    version: int = Field(default=0)  # the contact version that failed; rejected ones wait for a newer one
    status: str = Field(default="retry", max_length=16)  # retry | rejected | suppressed
    attempts: int = Field(default=0)
    last_error: str = Field(default="", max_length=300)
    updated_at: dt.datetime = Field(sa_column=_utc_column(nullable=False))


class InboxRow(SQLModel, table=True):
    """Webhook events stored durably before they are answered, processed later."""

    __tablename__ = "webhook_inbox"
    __table_args__ = (UniqueConstraint("provider", "event_id", name="uq_inbox_event"),)
    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(max_length=64)
    event_id: str = Field(max_length=200)
    received_at: dt.datetime = Field(sa_column=_utc_column(nullable=False))
    payload: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(default="new", max_length=16, index=True)  # new | claimed | done | failed
    claimed_by: str | None = Field(default=None, max_length=128)
    claimed_at: dt.datetime | None = Field(default=None, sa_column=_utc_column())
    processed_at: dt.datetime | None = Field(default=None, sa_column=_utc_column())


TABLES = SQLModel.metadata
