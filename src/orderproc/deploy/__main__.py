"""`python -m orderproc.deploy`: print the routing table, render the Kubernetes Ingress or an
nginx configuration from it.

    python -m orderproc.deploy routes
    python -m orderproc.deploy render-k8s -o deploy/k8s/base/ingress.yaml [--check]
    python -m orderproc.deploy render-nginx --users 10.0.0.11:8080 --users 10.0.0.12:8080 \\
        --inventory 10.0.0.21:8080 --orders 10.0.0.31:8080 --webui 10.0.0.41:8080 \\
        --gateway 10.0.0.51:8080 [--listen 443 --tls-certificate CRT --tls-key KEY] \\
        [--server-name shop.example] [-o FILE]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from orderproc.deploy.k8s import render_ingress
from orderproc.deploy.nginx import check_address, render_nginx
from orderproc.gateway.routes import ROUTES, Service


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "routes":
        for route in ROUTES:
            kind = "exact" if route.exact else "prefix"
            stream = "  stream" if route.stream else ""
            print(f"{route.path:<32} {kind:<6} {route.service.value}{stream}")
        return 0
    if args.command == "render-k8s":
        return _emit(render_ingress(), args.output, check=args.check)
    if bool(args.tls_certificate) != bool(args.tls_key):
        print("render-nginx: --tls-certificate and --tls-key go together", file=sys.stderr)
        return 2
    try:
        text = render_nginx(
            {service: getattr(args, service.value) or [] for service in Service},
            listen=args.listen,
            server_name=args.server_name,
            tls=(args.tls_certificate, args.tls_key) if args.tls_certificate else None,
        )
    except ValueError as exc:
        print(f"render-nginx: {exc}", file=sys.stderr)
        return 2
    return _emit(text, args.output, check=args.check)


def _emit(text: str, output: str, *, check: bool) -> int:
    if output == "-":
        if check:
            print("--check needs -o FILE", file=sys.stderr)
            return 2
        sys.stdout.write(text)
        return 0
    path = Path(output)
    if check:
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            print(f"{path} is out of date: regenerate it (without --check)", file=sys.stderr)
            return 1
        return 0
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}", file=sys.stderr)
    return 0


def _address(value: str) -> str:
    try:
        return check_address(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m orderproc.deploy",
        description="Deployment files from the gateway's routing table.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("routes", help="print the routing table, longest prefix first")

    k8s = commands.add_parser("render-k8s", help="the Kubernetes Ingress (deploy/k8s/base)")
    nginx = commands.add_parser("render-nginx", help="an nginx configuration (http context)")
    for command in (k8s, nginx):
        command.add_argument("-o", "--output", default="-", help="file to write (default: stdout)")
        command.add_argument(
            "--check", action="store_true", help="exit 1 if the file differs; write nothing"
        )
    for service in Service:
        nginx.add_argument(
            f"--{service.value}",
            action="append",
            type=_address,
            metavar="HOST:PORT",
            help=f"an address of the {service.value} service (repeat for each replica)",
        )
    nginx.add_argument("--listen", default="80", help="PORT or ADDRESS:PORT (default 80)")
    nginx.add_argument("--server-name", default="_", help="nginx server_name (default _)")
    nginx.add_argument("--tls-certificate", metavar="FILE", help="HTTPS: the certificate (chain)")
    nginx.add_argument("--tls-key", metavar="FILE", help="HTTPS: the certificate's key")
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
