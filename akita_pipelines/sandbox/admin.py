"""``/__sandbox/<action>``: an emulator's Python test API over HTTP (no auth), shared by the
emulators that serve it.

``GET stats``, ``GET ground_truth``, ``GET records?<type_key>=&include_deleted=1``,
``POST touch {<type_key>, count[, ids]}``, ``POST create {<type_key>, count}``,
``POST delete {<type_key>, ids}``, ``POST expire_tokens``, ``POST faults {fault, count}``;
emulators that push: ``POST webhooks {url[, retry_scale]}`` (subscribe; answers the secret and
the provider's account id), ``GET webhooks`` (delivery stats), ``POST webhook_faults {fault,
count}`` (``duplicate``, ``out_of_order``, ``forged``, ``replay``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, cast

from werkzeug.wrappers import Request, Response

from akita_pipelines.sandbox.emulator import PushingEmulator, TouchesNamed, WorldEmulator


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def _ids(values: Any) -> list[str]:
    if not isinstance(values, list):
        raise TypeError("ids must be a list")
    return [str(v) for v in values]


def serve(emulator: WorldEmulator, lock: AbstractContextManager[Any],
          environ: dict[str, Any], start_response: Callable[..., Any],
          dispatch: Callable[[Request], Response], *, type_key: str = "type") -> Any:
    """One WSGI request, one at a time under ``lock``: ``/__sandbox/`` to
    :func:`admin_response`, the rest (counted in ``stats["requests"]``) to the emulator's own
    ``dispatch``."""
    request = Request(environ)
    with lock:
        if request.path.startswith("/__sandbox/"):
            response = admin_response(emulator, request, type_key=type_key)
        else:
            emulator.stats["requests"] += 1
            response = dispatch(request)
    return response(environ, start_response)


def admin_response(emulator: WorldEmulator, request: Request, *,
                   type_key: str = "type") -> Response:
    """Answer one admin request by calling the emulator's own methods."""
    action = request.path.removeprefix("/__sandbox/").strip("/")
    body = request.get_json(silent=True) or {}
    result: Any
    try:
        if action == "stats":
            result = dict(emulator.stats)
        elif action == "ground_truth":
            result = [{"provider": p, "type": t, "id": i, "entity": e}
                      for (p, t, i), e in sorted(emulator.ground_truth().items())]
        elif action == "records":
            flag = request.args.get("include_deleted", "").lower() in ("1", "true", "yes")
            result = emulator.records(request.args.get(type_key, ""), include_deleted=flag)
        elif action == "touch":
            kind, count = str(body[type_key]), body.get("count")
            if "ids" in body:  # an emulator that can touch named records
                named = cast(TouchesNamed, emulator)
                result = {"ids": named.touch(kind, None if count is None else int(count),
                                             _ids(body["ids"]))}
            else:
                result = {"ids": emulator.touch(kind, int(1 if count is None else count))}
        elif action == "create":
            result = {"ids": emulator.create(str(body[type_key]), int(body.get("count", 1)))}
        elif action == "delete":
            ids = _ids(body["ids"])
            emulator.delete(str(body[type_key]), ids)
            result = {"ids": ids}
        elif action == "expire_tokens":
            emulator.expire_tokens()
            result = {"ok": True}
        elif action == "faults":
            emulator.inject(str(body["fault"]), int(body.get("count", 1)))
            result = {"ok": True}
        elif action == "webhooks" and request.method == "POST":
            # Subscribe a URL; ``retry_scale`` shortens the provider's retry delays.
            pushing = cast(PushingEmulator, emulator)  # AttributeError if it does not push
            result = pushing.subscribe_webhook(str(body["url"]))
            pushing.webhooks.retry_scale = float(body.get("retry_scale", 1.0))
        elif action == "webhooks":
            pushing = cast(PushingEmulator, emulator)
            result = {"stats": dict(pushing.webhooks.stats),
                      "subscriptions": [{"id": s.id, "url": s.url}
                                        for s in pushing.webhooks.subscriptions.values()]}
        elif action == "webhook_faults":
            cast(PushingEmulator, emulator).webhooks.inject(str(body["fault"]),
                                                            int(body.get("count", 1)))
            result = {"ok": True}
        else:
            return _json({"error": f"unknown action {action}"}, status=404)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return _json({"error": f"bad request: {exc}"}, status=400)
    return _json(result)
