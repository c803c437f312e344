"""Lookups shared by the two versioned resources (agents and Retell LLMs): a parent row that
knows its latest version, and one row per version."""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, select

from voxline.errors import NotFound


@dataclass(frozen=True)
class Versioned:
    parents: Table
    versions: Table
    key: str
    """The id column both tables share (`agent_id`, `llm_id`)."""
    label: str
    """How errors name the resource ("agent", "Retell LLM")."""

    def parent(self, conn: Connection, resource_id: str) -> Any:
        row = conn.execute(select(self.parents).where(self.parents.c[self.key] == resource_id)).first()
        if row is None:
            raise NotFound(f"{self.label} {resource_id} not found")
        return row

    def version(self, conn: Connection, resource_id: str, version: int | None) -> Any:
        """The given version, or the latest when `version` is None."""
        number = self.parent(conn, resource_id).latest_version if version is None else version
        row = conn.execute(
            select(self.versions).where(self.versions.c[self.key] == resource_id, self.versions.c.version == number)
        ).first()
        if row is None:
            raise NotFound(f"{self.label} {resource_id} has no version {version}")
        return row
