"""The feedback web app: FastAPI factory (pages + JSON API), and servers for scripts and tests:
in this process (a thread) or in a process of its own.

Errors never show tracebacks: the API answers ``{"error": ...}`` JSON, pages an HTML error page.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from http import HTTPStatus
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from redraft.config import dump_config, load_config
from redraft.errors import RedraftError
from redraft.feedback import api, pages
from redraft.feedback.config import FeedbackConfig
from redraft.feedback.migrations import upgrade
from redraft.feedback.queue import QueueError
from redraft.feedback.store import make_engine, make_sessionmaker

log = logging.getLogger(__name__)
SECURITY_HEADERS = {
    # Scripts only from our own static files: even text that escaped escaping could not run.
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
NO_STORE = (b"cache-control", b"no-store")


def _error(request: Request, status_code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    if request.url.path.startswith("/api") or request.url.path == "/openapi.json":
        return JSONResponse({"error": message}, status_code, headers=headers)
    title = HTTPStatus(status_code).phrase
    return pages.render(request, "error.html", status_code, code=status_code, title=title, message=message)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        return _error(request, exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return _error(request, 422, f"invalid request: {where}: {first['msg']}")

    @app.exception_handler(QueueError)
    async def queue_error(request: Request, exc: QueueError) -> Response:
        return _error(request, exc.status_code, str(exc))

    @app.exception_handler(pages.PageError)
    async def page_error(request: Request, exc: pages.PageError) -> Response:
        return _error(request, exc.status_code, str(exc))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error(request, 500, "internal error (details are in the server log)")


class LimitsAndHeaders:
    """Refuse oversized bodies and add the security headers to every answer.

    A declared Content-Length over the limit is refused before the app runs; and the bytes are
    counted as they arrive, so that a chunked upload (which declares none) is cut off at the limit
    instead of read whole before the app answers, even when the answer is a 401.
    A plain ASGI middleware: Starlette's BaseHTTPMiddleware costs a task group per request.
    """

    def __init__(self, app: ASGIApp, max_body: int):
        self.app, self.max_body = app, max_body
        self.too_large = f"request body larger than {max_body} bytes"
        self.headers = [(name.lower().encode(), value.encode()) for name, value in SECURITY_HEADERS.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Pages and API answers show labels and annotators: no browser or proxy may keep a copy.
        headers = self.headers if scope["path"].startswith("/static/") else [*self.headers, NO_STORE]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *headers]
            await send(message)

        declared = Headers(scope=scope).get("content-length", "0")
        if not declared.isdigit() or int(declared) > self.max_body:
            await _error(Request(scope), 413, self.too_large)(scope, receive, send_with_headers)
            return
        await self.app(scope, self._within_limit(receive), send_with_headers)

    def _within_limit(self, receive: Receive) -> Receive:
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body:
                # An HTTPException, which FastAPI's body parsing passes on (other errors become
                # a 400) and the app's handler answers, whichever route was reading.
                raise HTTPException(413, self.too_large)
            return message

        return receive_within_limit


def open_store(config: FeedbackConfig) -> Engine:
    """An engine on the store, its schema upgraded to head; an unusable store is a short error."""
    engine = make_engine(config.store)
    try:
        upgrade(engine)
    except Exception as exc:  # noqa: BLE001 (the URL, the server or the file is unusable: say which, briefly)
        raise RedraftError(f"cannot open the feedback store {engine.url!r}: {exc.__class__.__name__}: {exc}") from None
    return engine


def create_app(config: FeedbackConfig, secret: bytes | None = None) -> FastAPI:
    """Upgrade the store's schema to head and build the app on it."""
    engine = open_store(config)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = FastAPI(
        title="redraft feedback",
        summary="Label model outputs: compare, rank, rate, correct.",
        docs_url=None,  # Swagger UI loads scripts from a CDN, which the CSP (and offline use) forbid
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.feedback = api.AppState(config, make_sessionmaker(engine), secret or secrets.token_bytes(32))
    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    _install_error_handlers(app)
    app.add_middleware(LimitsAndHeaders, max_body=config.server.max_body_bytes)
    return app


CONFIG_ENV, SECRET_ENV = "REDRAFT_FEEDBACK_CONFIG", "REDRAFT_FEEDBACK_SECRET"


def app_from_environment() -> FastAPI:
    """The app of one of :func:`serve`'s worker processes: config file and CSRF secret come from
    the environment, so that every worker signs and checks forms alike."""
    return create_app(load_config(FeedbackConfig, os.environ[CONFIG_ENV]), bytes.fromhex(os.environ[SECRET_ENV]))


def serve(config: FeedbackConfig, log_level: str = "info") -> None:
    """Serve until interrupted, in ``config.server.workers`` processes sharing one socket."""
    options = {
        "host": config.server.host,
        "port": config.server.port,
        "log_level": log_level,
        "access_log": config.server.access_log,
    }
    announce = f"feedback app on http://{config.server.host}:{config.server.port}/ (store {config.store.url})"
    if config.server.workers == 1:
        app = create_app(config)
        print(announce, flush=True)
        uvicorn.run(app, **options)
        return
    open_store(config).dispose()  # upgrade once, here: a bad URL fails before any worker starts
    print(announce, flush=True)
    with tempfile.TemporaryDirectory(prefix="redraft-serve-") as tmp:
        dump_config(config, Path(tmp) / "feedback.yaml")
        os.environ[CONFIG_ENV] = str(Path(tmp) / "feedback.yaml")
        os.environ[SECRET_ENV] = secrets.token_hex(32)
        uvicorn.run(f"{__name__}:app_from_environment", factory=True, workers=config.server.workers, **options)


@contextmanager
def running_server(
    db_url: str | None = None,
    config: FeedbackConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    log_level: str = "warning",
) -> Iterator[str]:
    """Serve the app from a background thread (port 0: a free one); yields its base URL."""
    config = config or FeedbackConfig()
    if db_url is not None:
        config = config.model_copy(update={"store": config.store.model_copy(update={"url": db_url})})
    app = create_app(config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, access_log=False, timeout_keep_alive=30))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="feedback-server", daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RedraftError("the feedback server failed to start (see the log above)")
            thread.join(0.01)
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@contextmanager
def server_process(config: FeedbackConfig, start_timeout_s: float = 120.0) -> Iterator[str]:
    """Serve the app from ``redraft feedback serve`` in a process of its own, on a free port of
    127.0.0.1; yields its base URL. Clients in this process then do not share the server's
    interpreter lock (a load test measures the server, not the two fighting over one core)."""
    with tempfile.TemporaryDirectory(prefix="redraft-serve-") as tmp:
        config_path, log_path = Path(tmp) / "feedback.yaml", Path(tmp) / "server.log"
        dump_config(config, config_path)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        base_url = f"http://127.0.0.1:{port}"
        command = [
            sys.executable,
            "-m",
            "redraft",
            "feedback",
            "serve",
            "-c",
            str(config_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        with open(log_path, "wb") as server_log:
            process = subprocess.Popen(command, stdout=server_log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + start_timeout_s
            while True:
                if process.poll() is not None:
                    raise RedraftError(
                        f"the feedback server exited with code {process.returncode}:\n{log_path.read_text()[-2000:]}"
                    )
                try:
                    httpx.get(f"{base_url}/static/style.css", timeout=1.0).raise_for_status()
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise RedraftError(
                            f"the feedback server did not answer within {start_timeout_s:.0f} s"
                        ) from None
                    time.sleep(0.1)
            yield base_url
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
