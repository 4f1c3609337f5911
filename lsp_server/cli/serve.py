"""`code-kb serve`: the LSP server on stdio or a loopback TCP port."""

from __future__ import annotations

import argparse
import logging

from .common import UsageError, add_common, add_model, cli_overrides, settings_from

log = logging.getLogger("code_kb")


def loopback_host(host: str) -> None:
    """Refuse any address but loopback: the server has no authentication, and a listener on another
    interface would hand the workspace's code to whoever connects."""
    import ipaddress

    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback  # an address, not a name: no DNS lookup
    except ValueError:
        loopback = False
    if not loopback:
        raise UsageError(
            f"--host {host} is not a loopback address; code-kb serves only this machine "
            "(127.0.0.1, ::1 or localhost): it has no authentication"
        )


def cmd_serve(args: argparse.Namespace) -> int:
    from ..memory import limit_heaps
    from ..server import build_server

    if args.tcp is None and args.host != "127.0.0.1":
        raise UsageError("--host needs --tcp PORT")
    loopback_host(args.host)  # before anything loads: refused at once
    limit_heaps()  # before the server's threads start
    settings = settings_from(args)
    server = build_server(settings, overrides=cli_overrides(args))
    if args.tcp is not None:
        log.info("listening on %s:%d", args.host, args.tcp)
        server.start_tcp(args.host, args.tcp)
    else:
        server.start_io()
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the LSP server (stdio unless --tcp)")
    add_common(p)
    add_model(p)
    p.add_argument("--tcp", type=int, metavar="PORT", help="listen on 127.0.0.1:PORT instead of stdio")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="loopback address for --tcp (127.0.0.1, ::1 or localhost); any other is refused",
    )
    p.add_argument(
        "--stdio",
        action="store_true",
        help="speak LSP on stdin/stdout (the default; accepted "
        "because editor clients such as vscode-languageclient append it)",
    )
    p.set_defaults(func=cmd_serve)
