"""The ASGI application: routes, error shape, OpenAPI, and the process's background tasks."""

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from voxline import __version__
from voxline.api.errors import install_error_handlers
from voxline.api.routes import account, agents, calls, examples, files, live, llms, runtime
from voxline.api.routes.web import mount_web
from voxline.calls.sweeper import sweep_forever
from voxline.clock import Clock
from voxline.schemas.base import ErrorResponse
from voxline.services import Services
from voxline.settings import Settings


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = Services.build(settings, clock)
        await services.migrate()
        await services.calls.heartbeat()  # before any call can be joined by this process
        if settings.preload_speech:
            await services.speech()
        app.state.services = services
        # Move everything loaded at start-up out of the collector's view: full collections then
        # scan only per-request garbage, which keeps pauses out of the latency tail.
        gc.collect()
        gc.freeze()
        tasks = [
            asyncio.create_task(
                sweep_forever(
                    services.calls,
                    settings.sweep_interval_ms / 1000,
                    on_ended=services.after_call.ended_elsewhere,
                    cleanup_interval_s=settings.cleanup_interval_ms / 1000,
                ),
                name="voxline-call-sweeper",
            ),
            asyncio.create_task(services.webhooks.run(), name="voxline-webhooks"),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await services.close()

    app = FastAPI(
        title="Voxline",
        version=__version__,
        description="Self-hosted voice AI agents, wire-compatible with the Retell AI API.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    for module in (llms, agents, calls, account):
        app.include_router(module.router)
    app.include_router(examples.router)
    app.include_router(live.router)
    app.include_router(files.router)
    app.include_router(runtime.router)
    mount_web(app)

    @app.get("/health", tags=["Server"], include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with its 422 validation responses replaced by the 400 this API sends."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    error_ref = {"$ref": "#/components/schemas/ErrorResponse"}
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault("ErrorResponse", ErrorResponse.model_json_schema())
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            responses.setdefault(
                "400",
                {"description": "Invalid request", "content": {"application/json": {"schema": error_ref}}},
            )
    schema.setdefault("components", {})["securitySchemes"] = {"bearerAuth": {"type": "http", "scheme": "bearer"}}
    schema["security"] = [{"bearerAuth": []}]
    app.openapi_schema = schema
    return schema
