"""The one table the scheduler wiring owns: which replica claimed which job tick."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from shiftwatch.db import Base, UtcDateTime, utcnow


class JobTick(Base):
    """One claimed (job, tick): the primary key makes a second claim of the same tick fail, on any replica."""

    __tablename__ = "job_ticks"

    job_name: Mapped[str] = mapped_column(String(100), primary_key=True)
    tick: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True)
    claimed_by: Mapped[str] = mapped_column(String(200))
    claimed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
