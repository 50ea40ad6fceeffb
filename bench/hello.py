"""The bare hello-world baseline of the benchmark protocol (bench/README.md, "The protocol").

One FastAPI route returning a small JSON document, served exactly the way `orderproc serve`
serves the platform (src/orderproc/cli.py): a socket bound by us, `uvicorn.Server(config).run
(sockets=[sock])`, one worker, uvicorn's automatic loop and HTTP choices (uvloop and httptools
with uvicorn[standard]), no uvicorn access log, no server header, lifespan on.

    python bench/hello.py --port 0     # prints "hello on http://127.0.0.1:PORT" on stderr
"""

from __future__ import annotations

import argparse
import socket
import sys

from fastapi import FastAPI

app = FastAPI(title="hello")


@app.get("/hello")
async def hello() -> dict[str, str]:
    return {"message": "hello, world"}


def _bind(host: str, port: int) -> socket.socket:
    # The same as orderproc.cli._bind.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    sock = _bind(args.host, args.port)
    print(f"hello on http://{args.host}:{sock.getsockname()[1]}", file=sys.stderr, flush=True)
    # The same Config as orderproc.cli._serve (log_config=None: uvicorn's own loggers stay
    # quiet at the root logger's default level, as under `orderproc serve`'s JSON logging).
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
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
