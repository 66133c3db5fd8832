"""The webhook receiver: a small Starlette app, stateless (PostgreSQL is its only state), so
any number can run behind a load balancer.

``POST /webhooks/<provider>/<token>``: one integration's endpoint (an unguessable token).
``POST /webhooks/<provider>``: the provider's shared endpoint; the integration is found by the
account id in the notification (HubSpot ``portalId``, Stripe ``account``, Zendesk
``account_id``, Intercom ``app_id``). ``GET /healthz``: liveness.

Serve it with ``akita push serve`` or ``uvicorn --factory akita_pipelines.push.app:create_app``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from akita_pipelines.core.clock import utcnow
from akita_pipelines.db.engine import make_engine
from akita_pipelines.push.receiver import MAX_BODY_BYTES, Answer, Receiver

#: The base URL providers post to, when a proxy in front rewrites the host or scheme.
PUBLIC_URL_ENV = "AKITA_PUSH_PUBLIC_URL"


async def _read_capped(request: Request, limit: int) -> bytes | None:
    """The body, or ``None`` as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(engine: Engine | None = None, *, clock: Callable[[], datetime] = utcnow,
               public_url: str | None = None, max_body: int = MAX_BODY_BYTES) -> Starlette:
    """The receiver app over ``engine`` (default: ``$AKITA_DATABASE_URL`` or the local one).

    Args:
        engine: The Akita database.
        clock: The current aware time.
        public_url: The URL providers post to (default ``$AKITA_PUSH_PUBLIC_URL``); HubSpot
            signs the full URL.
        max_body: Larger bodies get 413.
    """
    receiver = Receiver(engine or make_engine(), clock=clock,
                        public_url=public_url or os.environ.get(PUBLIC_URL_ENV))

    def _response(answer: Answer) -> Response:
        return JSONResponse(answer.body, status_code=answer.status)

    async def receive(request: Request) -> Response:
        provider = request.path_params["provider"]
        token = request.path_params.get("token")
        body = await _read_capped(request, max_body)
        if body is None:
            return _response(await run_in_threadpool(receiver.refuse_oversized, provider))
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        answer = await run_in_threadpool(
            receiver.handle, provider, token, method=request.method, url=str(request.url),
            path=path, headers=request.headers, body=body)
        return _response(answer)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True})

    return Starlette(routes=[
        Route("/webhooks/{provider}/{token}", receive, methods=["POST"]),
        Route("/webhooks/{provider}", receive, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ])
