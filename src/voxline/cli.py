"""`voxline` command line: run the server and manage API keys."""

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

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


def _first_run_key(services: Services) -> Awaitable[str | None]:
    async def create_if_none() -> str | None:
        if await services.keys.list():
            return None
        return (await services.keys.create("default")).raw_key

    return create_if_none()


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from voxline.api.app import create_app

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = Settings(**overrides)
    new_key = _with_services(settings, _first_run_key)
    if new_key:
        print("Created the first API key for this data directory. It is shown only once:", flush=True)
        print(f"  {new_key}", flush=True)
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
    revoke = keys.add_parser("revoke", help="revoke a key by id; takes effect at once")
    revoke.add_argument("id")
    revoke.set_defaults(func=cmd_keys_revoke)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
