"""The `orderproc` command: serve the platform (or one service), start every service as its own
process (`up`), make an admin, migrate the store."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import os
import socket
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

from pydantic import ValidationError

from orderproc import __version__
from orderproc.common.settings import Settings
from orderproc.errors.exceptions import StoreUnavailable

if TYPE_CHECKING:
    from fastapi import FastAPI

    from orderproc.gateway.proxy import ProxyApp


SERVICES = ("users", "inventory", "orders", "webui", "gateway")


class StartupError(Exception):
    """A problem to report as one clear line, not a traceback."""


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        args.handler(args)
    except StartupError as exc:
        _fail(str(exc))
    except (OSError, StoreUnavailable) as exc:  # an unreachable store, a missing file: one line
        _fail(str(exc))
    except KeyboardInterrupt:
        pass


def _fail(message: str) -> NoReturn:
    print(f"orderproc: {message}", file=sys.stderr)
    raise SystemExit(2)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orderproc", description=__doc__)
    parser.add_argument("--version", action="version", version=f"orderproc {__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve", help="run the platform (embedded: every service), or one service"
    )
    serve.add_argument(
        "service",
        nargs="?",
        choices=SERVICES,
        help="run only this service, on its own port (default: every service in one process)",
    )
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8080)")
    serve.add_argument("--data-dir", help="where the SQLite database and secrets live")
    serve.add_argument(
        "--api-url",
        default=os.environ.get("ORDERPROC_API_URL"),
        help="webui only: where the API (the gateway) answers (default: ORDERPROC_API_URL)",
    )
    serve.set_defaults(handler=_serve)

    up = commands.add_parser(
        "up", help="run every service in a process of its own, behind one gateway port"
    )
    up.add_argument("--host", help="address every process listens on (default 127.0.0.1)")
    up.add_argument("--port", type=int, help="the gateway's port (default 8080; 0: any free)")
    up.add_argument("--data-dir", help="where the SQLite database and secrets live")
    up.set_defaults(handler=_up)

    admin = commands.add_parser("create-admin", help="create an admin, or promote a user")
    admin.add_argument("username")
    admin.add_argument("--email", help="email for a new user (default USERNAME@localhost)")
    admin.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    admin.add_argument("--data-dir")
    admin.set_defaults(handler=_create_admin)

    migrate = commands.add_parser("migrate", help="create or upgrade the database schema")
    migrate.add_argument("--data-dir")
    migrate.add_argument(
        "--status",
        action="store_true",
        help="show the store, its schema version, the latest this code knows and what is "
        "pending; change nothing",
    )
    migrate.set_defaults(handler=_migrate)

    reconcile = commands.add_parser(
        "reconcile", help="check every account against its ledger (exit 1 on a mismatch)"
    )
    reconcile.add_argument("--data-dir")
    reconcile.set_defaults(handler=_reconcile)

    seed = commands.add_parser("seed", help="load the packaged asset catalog (missing assets only)")
    seed.add_argument("--data-dir")
    seed.set_defaults(handler=_seed)
    return parser


def load_settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    for name in ("host", "port", "data_dir"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"ORDERPROC_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise StartupError(f"bad setting: {problems}") from None


def _check_data_dir(settings: Settings) -> None:
    if settings.database_url and not settings.database_url.startswith("sqlite"):
        return
    path = Path(settings.data_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        # A probe of this process's own: processes starting together (two `migrate`s, a
        # `serve` and a `migrate`) removed each other's fixed-name probe and failed.
        with tempfile.TemporaryFile(dir=path, prefix=".write-test-") as probe:
            probe.write(b"ok")
    except OSError as exc:
        raise StartupError(f"data dir {path} is not writable: {exc.strerror}") from None


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _raise_file_limit() -> None:
    """Open files up to the hard limit: each connection holds one, and a low soft limit (1,024
    on many systems) refuses real clients while idle ones wait out their time-outs."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 1 << 20 if hard == resource.RLIM_INFINITY else hard  # Linux's usual nr_open
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):  # not allowed here: keep the soft limit
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _serve(args: argparse.Namespace) -> None:
    import uvicorn

    from orderproc.webui.streams import stop_streams

    class _Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            stop_streams()  # live-price streams end now, not at the graceful-shutdown timeout
            super().handle_exit(sig, frame)

    from orderproc.common.connection_limits import limited_protocol
    from orderproc.common.logging import configure_logging

    service: str | None = args.service
    settings = load_settings(args)
    if service == "webui" and not args.api_url:
        raise StartupError("serve webui needs the API's URL: --api-url or ORDERPROC_API_URL")
    if service == "gateway" and not settings.gateway_upstreams:
        raise StartupError(
            "serve gateway needs the services' URLs: ORDERPROC_GATEWAY_UPSTREAMS (`orderproc "
            "serve` alone runs every service in one process)"
        )
    if service not in ("webui", "gateway"):  # they own no data
        _check_data_dir(settings)
        asyncio.run(_preflight(settings))
    app = _app_for(service, settings, api_url=args.api_url)
    _raise_file_limit()
    sock = _bind(settings.host, settings.port)
    configure_logging(service=service or "orderproc", level=settings.log_level)
    shown = f"[{settings.host}]" if ":" in settings.host else settings.host
    url = f"http://{shown}:{sock.getsockname()[1]}"
    if service is None:
        where = f"(API docs: {url}/docs; data: {settings.data_dir.resolve()})"
        print(f"Order Processor on {url}  {where}", file=sys.stderr, flush=True)
    else:
        print(f"Order Processor {service} on {url}", file=sys.stderr, flush=True)
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
        server_header=False,
        # X-Forwarded-For is read by common.web.client_ip_from, only from configured trusted
        # proxies; uvicorn's own rewrite would trust any local peer.
        proxy_headers=False,
        lifespan="on",
        # Connection limits (common/connection_limits.py, docs/security.md): head size and
        # time, body stalls, connections per address; keep-alive idle timeout.
        http=limited_protocol(settings),
        timeout_keep_alive=settings.keep_alive_timeout_seconds,
        ws="none",  # no WebSocket route: an upgrade would leave the limited protocol
    )
    try:
        _Server(config).run(sockets=[sock])
    except Exception as exc:  # a store that cannot open, a bad secret, ...
        raise StartupError(f"start-up failed: {exc}") from None


def _app_for(service: str | None, settings: Settings, *, api_url: str | None) -> FastAPI | ProxyApp:
    """The app to serve: every service in one (embedded), the gateway's proxy in front of the
    services, or one service's own (its composition root's `create_app`)."""
    if service is None:
        from orderproc.gateway.app import create_app

        return create_app(settings)
    if service == "gateway":
        from orderproc.gateway.proxy import create_proxy_app, upstreams_from_settings

        try:
            return create_proxy_app(settings, upstreams_from_settings(settings))
        except ValueError as exc:  # a service without a URL, or an unknown one
            raise StartupError(f"ORDERPROC_GATEWAY_UPSTREAMS: {exc}") from None
    if service == "users":
        from orderproc.users.app import create_app as users_app

        return users_app(settings)
    if service == "inventory":
        from orderproc.inventory.app import create_app as inventory_app

        return inventory_app(settings)
    if service == "orders":
        from orderproc.orders.app import create_app as orders_app

        return orders_app(settings)
    from orderproc.webui.app import create_app as webui_app

    assert api_url is not None
    return webui_app(settings, api_url=api_url)


def _up(args: argparse.Namespace) -> None:
    from orderproc.common.logging import configure_logging
    from orderproc.up import UpFailed, run

    settings = load_settings(args)
    _check_data_dir(settings)
    configure_logging(service="up", level=settings.log_level)
    try:
        run(settings)
    except UpFailed as exc:
        raise StartupError(str(exc)) from None
    except ValueError as exc:  # a weak or missing secret in distributed mode
        raise StartupError(str(exc)) from None


async def _preflight(settings: Settings) -> None:
    """Fail before serving, in one line, on what would otherwise fail inside start-up."""
    from orderproc.common.runtime import jwt_secret_for
    from orderproc.common.storage.factory import open_store

    try:
        jwt_secret_for(settings)
        store = open_store(settings.resolved_database_url)
        try:
            await store.migrate()
        finally:
            await store.close()
    except (ValueError, OSError, StoreUnavailable) as exc:
        raise StartupError(str(exc)) from None
    except Exception as exc:  # a store driver's own error type
        raise StartupError(f"cannot open the database: {exc}") from None


def _create_admin(args: argparse.Namespace) -> None:
    settings = load_settings(args)
    _check_data_dir(settings)
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != password:
            raise StartupError("the passwords differ")
    email = args.email or f"{args.username.lower()}@localhost"
    message = asyncio.run(_make_admin(settings, args.username, email, password))
    print(message)


async def _make_admin(settings: Settings, username: str, email: str, password: str) -> str:
    from orderproc.errors import OrderProcError, UsernameTaken
    from orderproc.runtime import build_runtime
    from orderproc.users import service

    runtime = await build_runtime(settings, service="cli")
    try:
        reg = service.Registration(
            username=username,
            email=email,
            password=password,
            first_name="Admin",
            last_name=username,
            role="admin",
        )
        try:
            await service.register(reg, deps=runtime.users)
            return f"created admin {username.lower()}"
        except UsernameTaken:
            await service.admin_update_user(
                username, role="admin", is_active=True, actor_id="cli", deps=runtime.users
            )
            return f"promoted {username.lower()} to admin"
        except OrderProcError as exc:
            raise StartupError(exc.detail) from None
    finally:
        await runtime.close()


def _migrate(args: argparse.Namespace) -> None:
    from orderproc.common.storage.factory import open_store

    settings = load_settings(args)
    _check_data_dir(settings)
    if args.status:
        print(asyncio.run(_migration_status(settings.resolved_database_url)))
        return

    async def run() -> None:
        store = open_store(settings.resolved_database_url)
        try:
            await store.migrate()
        finally:
            await store.close()

    asyncio.run(run())
    print("schema is up to date")


async def _migration_status(database_url: str) -> str:
    """What `migrate --status` prints: the store, the schema version it is at, the version this
    code declares, and whether an upgrade is pending (reads only; an unmigrated store is at 0)."""
    import sqlite3

    from orderproc.common.storage.factory import POSTGRES_PREFIXES, SQLITE_PREFIX, open_store
    from orderproc.common.storage.schema import SCHEMA_VERSION
    from orderproc.common.storage.sqlite import SqliteStore

    store = open_store(database_url)
    try:
        if isinstance(store, SqliteStore):
            path = database_url.removeprefix(SQLITE_PREFIX)
            where = f"sqlite {path if path == ':memory:' else '/' + path.lstrip('/')}"
            try:
                applied = store.applied_versions()
            except sqlite3.OperationalError:  # no schema_migrations: never migrated
                applied = []
        elif database_url.startswith(POSTGRES_PREFIXES):
            import asyncpg

            from orderproc.common.storage.postgres import PostgresStore

            assert isinstance(store, PostgresStore)
            where = f"postgresql {store.address}"
            try:
                applied = await store.applied_versions()
            except asyncpg.UndefinedTableError:
                applied = []
        else:
            return "store: memory (no schema: nothing to migrate)"
    finally:
        await store.close()
    current = max(applied, default=0)
    lines = [
        f"store: {where}",
        f"current version: {current}",
        f"latest version: {SCHEMA_VERSION}",
        "pending: "
        + ("none" if current >= SCHEMA_VERSION else f"upgrade {current} -> {SCHEMA_VERSION}"),
    ]
    if current > SCHEMA_VERSION:  # a database newer than this code
        lines.append(f"applied but unknown to this code: {current}")
    return "\n".join(lines)


def _seed(args: argparse.Namespace) -> None:
    from orderproc.common.storage.factory import open_store
    from orderproc.inventory.service import seed_catalog

    settings = load_settings(args)
    _check_data_dir(settings)

    async def run() -> int:
        store = open_store(settings.resolved_database_url)
        try:
            await store.migrate()
            return await seed_catalog(store)
        finally:
            await store.close()

    print(f"added {asyncio.run(run())} assets to the catalog")


def _reconcile(args: argparse.Namespace) -> None:
    from orderproc.common.storage.factory import open_store
    from orderproc.orders.portfolio import reconcile_sweep

    settings = load_settings(args)

    async def run() -> int:
        accounts = positions = bad = 0
        store = open_store(settings.resolved_database_url)
        try:
            await store.migrate()
            # Page by page: each mismatch is printed when found, nothing else is kept.
            async for result in reconcile_sweep(store=store):
                accounts += 1
                positions += result.positions_checked
                bad += not result.clean
                for m in result.mismatches:
                    where = f"{m.what} {m.asset_id}" if m.asset_id else m.what
                    print(
                        f"user {result.user_id}: {where}: {m.problem} "
                        f"(stored {m.stored}, ledger {m.ledger})",
                        flush=True,
                    )
        finally:
            await store.close()
        print(
            f"checked {accounts} accounts and {positions} positions: "
            f"{'all clean' if not bad else f'{bad} with mismatches'}"
        )
        return 1 if bad else 0

    code = asyncio.run(run())
    if code:
        raise SystemExit(code)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
