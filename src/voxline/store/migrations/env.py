"""Alembic environment: runs migrations on the connection `voxline.store.migrate` passes in."""

from alembic import context

from voxline.store.tables import Base

target_metadata = Base.metadata
connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only `alembic revision --autogenerate` by hand
    raise RuntimeError("run migrations through voxline.store.migrate")
context.configure(
    connection=connection,
    target_metadata=target_metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
