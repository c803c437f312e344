"""`voxline` command line: run the server and manage API keys."""

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from voxline.keys import webhook_key
from voxline.schemas.agent import AgentCreateRequest
from voxline.services import Services
from voxline.settings import Settings

T = TypeVar("T")


def _with_services(settings: Settings, work: Callable[[Services], Awaitable[T]]) -> T:
    async def run() -> T:
        services = Services.build(settings)
        try:
            await services.migrate()
            return await work(services)
        finally:
            await services.close()

    return asyncio.run(run())


DEMO_AGENT_NAME = "Demo receptionist (example LLM)"


def demo_llm_url(settings: Settings) -> str:
    """The example receptionist this server mounts, as the server itself dials it."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    host = f"[{host}]" if ":" in host else host
    return f"ws://{host}:{settings.port}/examples/receptionist/llm-websocket"


def _first_run(services: Services) -> Awaitable[tuple[str, str] | None]:
    """On a brand-new data directory: one API key and a demo agent on the example LLM server."""

    async def bootstrap() -> tuple[str, str] | None:
        if await services.keys.list():
            return None
        new = await services.keys.ensure_webhook_key(services.settings.token_secret)
        key = new.raw_key if new is not None else (await services.keys.create("default")).raw_key
        agent = await services.agents.create(
            AgentCreateRequest.model_validate(
                {
                    "agent_name": DEMO_AGENT_NAME,
                    "voice_id": services.settings.default_voice_id,
                    "response_engine": {"type": "custom-llm", "llm_websocket_url": demo_llm_url(services.settings)},
                }
            )
        )
        return key, agent.agent_id

    return bootstrap()


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from voxline.api.app import create_app

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = Settings(**overrides)
    first = _with_services(settings, _first_run)
    if first:
        key, agent_id = first
        print(
            "Created the first API key for this data directory. It also signs webhooks and custom-tool requests"
            " (`voxline keys webhook` shows it again):",
            flush=True,
        )
        print(f"  {key}", flush=True)
        print(f"Created the demo agent {agent_id} ({DEMO_AGENT_NAME}).", flush=True)
    print(f"Voxline listening on http://{settings.host}:{settings.port} (data: {settings.data_dir})", flush=True)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
    )
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    new = _with_services(Settings(), lambda s: s.keys.create(args.name))
    print(f"Created API key {new.info.id} ({new.info.name}). It is shown only once:")
    print(new.raw_key)
    return 0


def cmd_keys_webhook(_args: argparse.Namespace) -> int:
    settings = Settings()
    _with_services(settings, lambda s: s.keys.ensure_webhook_key(settings.token_secret))
    print("The API key that signs webhooks and custom-tool requests (derived from the secret key):")
    print(webhook_key(settings.token_secret))
    return 0


def cmd_keys_list(_args: argparse.Namespace) -> int:
    keys = _with_services(Settings(), lambda s: s.keys.list())
    print(f"{'ID':<22} {'NAME':<20} {'PREFIX':<14} {'CREATED (UTC)':<20} STATUS")
    for k in keys:
        created = datetime.fromtimestamp(k.created_at / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
        status = "revoked" if k.revoked_at else "active"
        print(f"{k.id:<22} {k.name:<20} {k.prefix + '…':<14} {created:<20} {status}")
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    if _with_services(Settings(), lambda s: s.keys.revoke(args.id)):
        print(f"Revoked {args.id}.")
        return 0
    print(f"No active key with id {args.id}.", file=sys.stderr)
    return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voxline", description="Self-hosted voice AI agents (Retell-compatible).")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the server (SQLite and local files by default)")
    serve.add_argument("--host", help="interface to bind (VOXLINE_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (VOXLINE_PORT, default 8080)")
    serve.set_defaults(func=cmd_serve)

    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", help="create a key; it is printed alone on the last line")
    create.add_argument("--name", default="default")
    create.set_defaults(func=cmd_keys_create)
    keys.add_parser("list", help="list keys (names and prefixes only)").set_defaults(func=cmd_keys_list)
    keys.add_parser("webhook", help="print the key that signs webhooks and tool requests").set_defaults(
        func=cmd_keys_webhook
    )
    revoke = keys.add_parser("revoke", help="revoke a key by id; takes effect at once")
    revoke.add_argument("id")
    revoke.set_defaults(func=cmd_keys_revoke)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
