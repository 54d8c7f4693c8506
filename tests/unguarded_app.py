"""A variant of the real app that lost its API-key guard on one endpoint (or its audit of
refused keys), for meta-tests.

`python -m tests.unguarded_app --port N "POST /runs/{run_id}/cancel"` serves the app
`create_app` builds from the environment (NF_HOME, DATABASE_URL, NF_API_KEY), with the
`require_api_key` dependency stripped from that one route and its executor off. It stands for
a deployment whose guard went missing; the app itself has no switch that does this, so no
back door ships with it.
"""

from __future__ import annotations

import argparse
import logging
import sys

from fastapi.routing import APIRoute, APIRouter


def _strip_guard(router: APIRouter, name: str, guard: object) -> None:
    method, path = name.split(" ", 1)
    routes = router.routes
    for i, route in enumerate(routes):
        if isinstance(route, APIRoute) and route.path == path and method in route.methods:
            routes[i] = APIRoute(
                route.path,
                route.endpoint,
                methods=sorted(route.methods),
                status_code=route.status_code,
                dependencies=[d for d in route.dependencies if d.dependency is not guard],
                name=route.name,
            )
            return
    sys.exit(f"no route {name!r} in the app")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.unguarded_app")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("route", nargs="?", help='"METHOD /path/{param}" whose key check is removed')
    p.add_argument("--unaudited", action="store_true", help="refused keys leave no audit row")
    args = p.parse_args(argv)

    import uvicorn
    from nf_auto_runner import config
    from nf_auto_runner.app import api
    from nf_auto_runner.app.application import create_app
    from nf_auto_runner.logs import setup_logging

    settings = config.load()
    config.ensure_dirs(settings)
    setup_logging(settings)
    if args.route:
        _strip_guard(api.router, args.route, api.require_api_key)  # before the app includes it
    if args.unaudited:
        logging.getLogger("nf_auto_runner.auth").disabled = True
    app = create_app(settings, run_executor=False)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_config=None, access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
