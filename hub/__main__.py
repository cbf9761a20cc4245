"""`python -m hub` serves; `python -m hub create-admin --email E --password P` makes a super_admin."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from hub.errors import HubError
from hub.logs import configure_logging
from hub.settings import Settings, SettingsError, load_settings

log = logging.getLogger("hub")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hub", description="Market Hub server")
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="run the server (the default)")
    for target, default in ((parser, None), (serve, argparse.SUPPRESS)):
        # SUPPRESS on the subcommand: `--port N serve` keeps N instead of resetting it to None.
        target.add_argument("--host", default=default, help="listen address (default: HOST or 127.0.0.1)")
        target.add_argument("--port", type=int, default=default, help="listen port (default: PORT or 8000)")
    admin = commands.add_parser("create-admin", help="create or promote a super_admin")
    admin.add_argument("--email", required=True)
    admin.add_argument("--password", required=True)
    admin.add_argument("--name", default="Administrator")
    return parser


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    uvloop.install()


def serve(settings: Settings) -> None:
    from hub.app import create_app
    from hub.keys import drain_key
    from hub.serving import serve_until_stopped

    _install_uvloop()
    app = create_app(settings)
    log.info("starting", extra={"host": settings.host, "port": settings.port, "embedded": settings.embedded})
    asyncio.run(serve_until_stopped(app, app[drain_key], settings))


async def create_admin(settings: Settings, email: str, password: str, name: str) -> str:
    from auth.tokens import TokenIssuer
    from hub.accounts import Accounts
    from hub.database import open_store

    # one_shot: a running embedded hub's database is used, not started a second time on the same files.
    async with open_store(settings, one_shot=True) as store:
        tokens = TokenIssuer(settings.secret, settings.jwt_algorithm, lifetime=settings.token_lifetime)
        user, created = await Accounts(store.users, tokens).create_admin(email, password, name)
    return f"{'created' if created else 'promoted'} super_admin {user.email} ({user.id})"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides = {key: value for key in ("host", "port") if (value := getattr(args, key, None)) is not None}
    try:
        settings = load_settings(**overrides).ensure_secret()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    if args.command == "create-admin":
        from hub.database import DatabaseUnreachable
        from store.client import UNAVAILABLE_ERRORS

        try:
            print(asyncio.run(create_admin(settings, args.email, args.password, args.name)))
        except HubError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return 1
        except DatabaseUnreachable as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except UNAVAILABLE_ERRORS:
            print("error: the database stopped answering; nothing was changed, or try again", file=sys.stderr)
            return 1
        return 0
    serve(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
