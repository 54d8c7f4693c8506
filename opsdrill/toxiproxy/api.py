"""The HTTP API of Shopify/toxiproxy 2.x: routes, JSON shapes and status codes.

    GET    /proxies                      200 {name: proxy}
    POST   /proxies                      201 proxy | 400 | 409 | 500 (listen failed)
    POST   /populate                     201 {"proxies": [...]} | error with "proxies" too
    GET    /proxies/{proxy}              200 proxy | 404
    POST   /proxies/{proxy} (or PATCH)   200 proxy            update listen/upstream/enabled
    DELETE /proxies/{proxy}              204
    GET    /proxies/{proxy}/toxics       200 [toxic]           upstream ones first
    POST   /proxies/{proxy}/toxics       200 toxic (not 201: as the Go server) | 400 | 409
    GET    /proxies/{proxy}/toxics/{t}   200 toxic | 404
    POST   /proxies/{proxy}/toxics/{t}   200 toxic (or PATCH)  update attributes/toxicity
    DELETE /proxies/{proxy}/toxics/{t}   204
    POST   /reset                        204                   enable all, remove all toxics
    GET    /version                      200 {"version": "..."}

Errors are {"error": message, "status": code}; an unknown path is 404 "404 page not found", a
known path with another method 405, a browser user agent 403 (all as gorilla/mux and the Go
server do). Not served: /metrics.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable

from opsdrill.toxiproxy import errors
from opsdrill.toxiproxy.http_io import Request, Response
from opsdrill.toxiproxy.proxy_collection import ProxyCollection

__all__ = ["TOXIPROXY_VERSION", "dispatch"]

TOXIPROXY_VERSION = "2.12.0"  # the Go release whose API this mirrors

log = logging.getLogger(__name__)

Handler = Callable[[ProxyCollection, Request, dict[str, str]], Awaitable[Response]]


def _body(request: Request) -> object:
    if not request.body.strip():
        raise errors.bad_request_body("EOF")
    try:
        return json.loads(request.body)
    except ValueError as exc:
        raise errors.bad_request_body(f"invalid JSON: {exc}") from exc


async def reset(proxies: ProxyCollection, request: Request, args: dict[str, str]) -> Response:
    await proxies.reset()
    return Response(204)


async def proxy_index(proxies: ProxyCollection, request: Request, args: dict[str, str]) -> Response:
    index = proxies.proxies
    return Response.json({name: index[name].to_json() for name in sorted(index)})


async def proxy_create(
    proxies: ProxyCollection, request: Request, args: dict[str, str]
) -> Response:
    proxy = await proxies.create(_body(request))
    return Response.json(proxy.to_json(), 201)


async def populate(proxies: ProxyCollection, request: Request, args: dict[str, str]) -> Response:
    try:
        done, error = await proxies.populate(_body(request))
    except errors.ApiError as exc:
        done, error = [], exc
    # Go marshals an empty result as null
    payload: dict[str, object] = {"proxies": [p.to_json() for p in done] or None}
    if error is None:
        return Response.json(payload, 201)
    return Response.json({**error.to_json(), **payload}, error.status)


async def proxy_show(proxies: ProxyCollection, request: Request, args: dict[str, str]) -> Response:
    return Response.json(proxies.get(args["proxy"]).to_json())


async def proxy_update(
    proxies: ProxyCollection, request: Request, args: dict[str, str]
) -> Response:
    proxies.get(args["proxy"])  # 404 before 400, as Go
    proxy = await proxies.update(args["proxy"], _body(request))
    return Response.json(proxy.to_json())


async def proxy_delete(
    proxies: ProxyCollection, request: Request, args: dict[str, str]
) -> Response:
    proxies.remove(args["proxy"])
    return Response(204)


async def toxic_index(proxies: ProxyCollection, request: Request, args: dict[str, str]) -> Response:
    return Response.json(proxies.get(args["proxy"]).toxics.to_json())


async def toxic_create(
    proxies: ProxyCollection, request: Request, args: dict[str, str]
) -> Response:
    toxics = proxies.get(args["proxy"]).toxics
    return Response.json(toxics.add(_body(request)).to_json())


async def toxic_show(proxies: ProxyCollection, request: Request, args: dict[str, str]) -> Response:
    return Response.json(proxies.get(args["proxy"]).toxics.find(args["toxic"]).to_json())


async def toxic_update(
    proxies: ProxyCollection, request: Request, args: dict[str, str]
) -> Response:
    toxics = proxies.get(args["proxy"]).toxics
    toxics.find(args["toxic"])
    return Response.json(toxics.update(args["toxic"], _body(request)).to_json())


async def toxic_delete(
    proxies: ProxyCollection, request: Request, args: dict[str, str]
) -> Response:
    proxies.get(args["proxy"]).toxics.remove(args["toxic"])
    return Response(204)


async def version(proxies: ProxyCollection, request: Request, args: dict[str, str]) -> Response:
    body = f'{{"version": "{TOXIPROXY_VERSION}"}}\n'.encode()
    return Response(200, body, "application/json;charset=utf-8")


_NAME = r"[^/]+"
_TABLE: list[tuple[str, dict[str, Handler]]] = [
    (r"/reset", {"POST": reset}),
    (r"/proxies", {"GET": proxy_index, "POST": proxy_create}),
    (r"/populate", {"POST": populate}),
    (
        rf"/proxies/(?P<proxy>{_NAME})",
        {
            "GET": proxy_show,
            "POST": proxy_update,
            "PATCH": proxy_update,
            "DELETE": proxy_delete,
        },
    ),
    (rf"/proxies/(?P<proxy>{_NAME})/toxics", {"GET": toxic_index, "POST": toxic_create}),
    (
        rf"/proxies/(?P<proxy>{_NAME})/toxics/(?P<toxic>{_NAME})",
        {
            "GET": toxic_show,
            "POST": toxic_update,
            "PATCH": toxic_update,
            "DELETE": toxic_delete,
        },
    ),
    (r"/version", {"GET": version}),
]
ROUTES = [(re.compile(pattern), handlers) for pattern, handlers in _TABLE]


async def dispatch(proxies: ProxyCollection, request: Request) -> Response:
    """Route one request; every failure becomes the response the Go server would send."""
    if request.header("user-agent").startswith("Mozilla/"):
        return Response.text("User agent not allowed\n", 403)  # no CSRF from a browser
    for pattern, handlers in ROUTES:
        match = pattern.fullmatch(request.path)
        if match is None:
            continue
        handler = handlers.get(request.method)
        if handler is None:
            return Response.text("", 405)
        try:
            return await handler(proxies, request, match.groupdict())
        except errors.ApiError as exc:
            return Response.json(exc.to_json(), exc.status)
        except Exception as exc:
            log.exception("toxiproxy API: %s %s failed", request.method, request.path)
            return Response.json({"error": str(exc), "status": 500}, 500)
    return Response.text("404 page not found\n", 404)
