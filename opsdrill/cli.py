"""`opsdrill up | down | status | rollback | gameday`: a stack and its game day from a shell.

Every command takes `--target SPEC` (default `local:.opsdrill`, the embedded stack;
`--state-dir DIR` is short for `--target local:DIR`).

Every failure ends in one line on stderr saying what is wrong and what to do, and an exit
code from `opsdrill.exitcodes`; a traceback means a bug in opsdrill.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from opsdrill import doctest
from opsdrill.errors import OpsdrillError, UsageError
from opsdrill.exitcodes import ExitCode, exit_code_for
from opsdrill.faults.rollback import rollback
from opsdrill.report import build_report
from opsdrill.targets import DEFAULT_SPEC, GAMEDAY_DATA_FS, Target, gameday_stack, parse_spec
from opsdrill.targets.model import public_url

__all__ = ["main", "target_spec"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(ExitCode.USAGE, f"opsdrill: {message}; run 'opsdrill --help' for usage\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="opsdrill", description=__doc__.split("\n")[0])
    common = _Parser(add_help=False)
    where = common.add_mutually_exclusive_group()
    where.add_argument(
        "--target", metavar="SPEC", default=None,
        help=f"the stack: local:DIR, docker:PROJECT or a target file (default: {DEFAULT_SPEC})",
    )  # fmt: skip
    where.add_argument(
        "--state-dir", type=Path, default=None,
        help="where the embedded stack keeps its files: short for --target local:DIR",
    )  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    up = sub.add_parser("up", parents=[common], help="start the embedded stack")
    up.add_argument("--no-monitoring", action="store_true", help="skip Prometheus & co.")
    up.add_argument("--no-train", action="store_true", help="skip training the first model")
    up.add_argument(
        "--no-redis",
        action="store_true",
        default=None,
        help="no Redis forecast cache (on where redis-server is installed)",
    )
    up.add_argument(
        "--no-mlflow",
        action="store_true",
        help="no MLflow tracking server (on where the mlflow package is installed)",
    )
    up.add_argument("--data-fs-size", metavar="SIZE",
                    help="put NF_HOME on a loop-mounted ext4 image of SIZE (e.g. 64m; root), "
                         "so the disk-full drill can really fill it")  # fmt: skip
    up.add_argument("--proxy", action="store_true", default=None,
                    help="Toxiproxy between app and PostgreSQL, and before the API")  # fmt: skip

    sub.add_parser("down", parents=[common], help="stop every service by pid")

    report = sub.add_parser("report", help="rebuild a run's HTML report from its artefacts")
    report.add_argument("run_dir", type=Path, help="a run folder, e.g. reports/gameday-...")

    sub.add_parser("rollback", parents=[common], help="revert every fault a killed run left behind")

    status = sub.add_parser("status", parents=[common], help="show each service")
    status.add_argument("--json", action="store_true", help="machine-readable output")

    gameday = sub.add_parser("gameday", parents=[common], help="up, run every suite, report, down")
    gameday.add_argument("--reports", type=Path, default=Path("reports"),
                         help="where the summary goes (default: reports/)")  # fmt: skip
    gameday.add_argument("--keep-up", action="store_true", help="leave the stack running")
    gameday.add_argument("--no-monitoring", action="store_true", help="skip Prometheus & co.")
    gameday.add_argument("--suite", action="append", dest="suites", metavar="NAME",
                         help="run only this suite (repeatable)")  # fmt: skip
    gameday.add_argument("--data-fs-size", metavar="SIZE", default=None,
                         help="size of the stack's own data filesystem, so the disk-full drill "
                              f"can run (default {GAMEDAY_DATA_FS} when root)")  # fmt: skip
    gameday.add_argument(
        "--reuse-state",
        action="store_true",
        help="keep a stopped stack's data from an earlier run (default: start fresh, so an "
        "earlier game day's drills do not fail today's checks)",
    )
    gameday.add_argument(
        "--no-proxy",
        action="store_true",
        help="no Toxiproxy in front of the DB and API (network drills skip)",
    )
    gameday.add_argument(
        "--plan-file", type=Path, default=None, metavar="FILE",
        help="the game-day plan: skips expected on this machine, each with its condition and "
        "reason (default: gameday.yaml in the checkout); any other skip makes it INCOMPLETE",
    )  # fmt: skip
    gameday.add_argument(
        "--suites-dir", type=Path, default=None, metavar="DIR",
        help="the folder holding the checks/, chaos/ and load/ suites (default: this checkout)",
    )  # fmt: skip
    doctest = sub.add_parser("doctest", help="check every SQL statement of a Markdown runbook")
    doctest.add_argument("path", type=Path, help="the runbook, e.g. docs/RUNBOOK.md")
    db_where = doctest.add_mutually_exclusive_group()
    db_where.add_argument("--target", default="local", metavar="SPEC",
                          help="stack whose database is used: 'local' or 'local:DIR'")  # fmt: skip
    db_where.add_argument("--dsn", help="any database; treated as production unless --sandbox")
    doctest.add_argument(
        "--sandbox", action="store_true", help="with --dsn: a disposable database (writes run)"
    )
    doctest.add_argument("--json", type=Path, metavar="OUT", help="also write the results as JSON")
    doctest.add_argument("-v", "--verbose", action="store_true", help="list ok statements too")
    return parser


def target_spec(args: argparse.Namespace) -> str:
    """The spec the command acts on: --target, --state-dir as local:DIR, else the default;
    a local directory made absolute, so every process (a game day's suites) finds it."""
    spec = f"local:{args.state_dir}" if args.state_dir is not None else args.target or DEFAULT_SPEC
    scheme, _, rest = spec.partition(":")
    if scheme == "local":
        return f"local:{Path(rest or DEFAULT_SPEC.partition(':')[2]).absolute()}"
    return spec


def cmd_up(args: argparse.Namespace) -> int:
    target = parse_spec(target_spec(args), monitoring=False if args.no_monitoring else None,
                        data_fs_size=args.data_fs_size, proxy=args.proxy,
                        redis=False if args.no_redis else None,
                        mlflow=False if args.no_mlflow else None)  # fmt: skip
    target.up(train=not args.no_train)
    print(f"stack up; API {target.endpoints.api_url}")
    return ExitCode.OK


def cmd_down(args: argparse.Namespace) -> int:
    parse_spec(target_spec(args)).down()
    return ExitCode.OK


def cmd_report(args: argparse.Namespace) -> int:
    if not args.run_dir.is_dir():
        raise UsageError(f"{args.run_dir} is not a directory: give a run folder under reports/")
    print(build_report(args.run_dir))
    return ExitCode.OK


def cmd_rollback(args: argparse.Namespace) -> int:
    reverted = rollback(parse_spec(target_spec(args)))
    print(f"{len(reverted)} fault(s) reverted" if reverted else "no fault to revert")
    return ExitCode.OK


def cmd_status(args: argparse.Namespace) -> int:
    target = parse_spec(target_spec(args))
    rows = target.status()
    if args.json:
        print(json.dumps({
            "target": target.spec,
            "kind": target.kind,
            "healthy": all(r.healthy for r in rows),
            "services": [vars(r) for r in rows],
            "missing": target.absent_services(),
        }, indent=2))  # fmt: skip
    else:
        print(f"{'service':<18} {'state':<9} {'health':<9} {'pid':>7}  url")
        for r in rows:
            state = "running" if r.running else "stopped"
            health = "healthy" if r.healthy else "-" if not r.running else "UNHEALTHY"
            print(f"{r.name:<18} {state:<9} {health:<9} {r.pid or '-':>7}  {public_url(r.url)}")
        for name in target.absent_services():
            print(f"{name:<18} {'absent':<9} {'-':<9} {'-':>7}  (package not installed)")
    return ExitCode.OK if all(r.healthy for r in rows) else ExitCode.FAILED


def gameday_target(args: argparse.Namespace) -> Target:
    """A running stack (or one deployed elsewhere) as it is; a new embedded one with
    everything the drills need to run for real."""
    return gameday_stack(
        target_spec(args),
        fresh=not args.reuse_state,
        monitoring=not args.no_monitoring,
        data_fs_size=args.data_fs_size,
        proxy=not args.no_proxy,
    )


def cmd_gameday(args: argparse.Namespace) -> int:
    # here, not at the top: the game day's load gate costs a second of imports (SciPy)
    from opsdrill.gameday.plan import PLAN_FILE, GameDayPlan
    from opsdrill.gameday.run import GameDay, repo_root

    root = args.suites_dir or repo_root()
    if not root.is_dir():
        raise UsageError(f"--suites-dir {root} is not a directory: give the folder holding "
                         "checks/, chaos/ and load/")  # fmt: skip
    plan = GameDayPlan.load(args.plan_file or root / PLAN_FILE, required=bool(args.plan_file))
    day = GameDay(
        gameday_target(args),
        reports_root=args.reports,
        keep_up=args.keep_up,
        only=args.suites,
        plan=plan,
        suites_root=root,
    )
    return day.run()


def cmd_doctest(args: argparse.Namespace) -> int:
    """Validate a runbook's SQL against a live schema; exit 1 when any statement is broken."""
    if args.sandbox and not args.dsn:
        raise UsageError(
            "--sandbox only applies to --dsn: a target says itself if it is production"
        )
    doctest.check_path(args.path)
    if args.dsn:
        db = doctest.database_for_dsn(args.dsn, sandbox=args.sandbox)
    else:
        db = doctest.database_for_target(parse_spec(args.target))
    report = doctest.doctest(args.path, db)
    print(report.render_text(verbose=args.verbose))
    if args.json:
        report.write_json(args.json)
    return ExitCode.FAILED if report.broken else ExitCode.OK


COMMANDS = {
    "up": cmd_up,
    "down": cmd_down,
    "status": cmd_status,
    "rollback": cmd_rollback,
    "report": cmd_report,
    "gameday": cmd_gameday,
    "doctest": cmd_doctest,
}


def _terminate(signum: int, _frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so every `finally` (stack teardown, fault revert) runs."""
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return int(COMMANDS[args.command](args))
    except OpsdrillError as exc:
        print(f"opsdrill {args.command}: {exc}", file=sys.stderr)
        return int(exit_code_for(exc))
    except KeyboardInterrupt:
        print(f"opsdrill {args.command}: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)


if __name__ == "__main__":
    sys.exit(main())
