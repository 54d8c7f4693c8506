"""`opsdrill up | down | status | gameday`: the embedded stack and the game day from a shell.

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

from opsdrill.errors import OpsdrillError
from opsdrill.exitcodes import ExitCode, exit_code_for
from opsdrill.targets import DEFAULT_STATE_DIR
from opsdrill.targets.local import LocalTarget

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(ExitCode.USAGE, f"opsdrill: {message}; run 'opsdrill --help' for usage\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="opsdrill", description=__doc__.split("\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--state-dir", type=Path, default=DEFAULT_STATE_DIR,
        help="where the embedded stack keeps its files (default: .opsdrill)",
    )  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    up = sub.add_parser("up", parents=[common], help="start the embedded stack")
    up.add_argument("--no-monitoring", action="store_true", help="skip Prometheus & co.")
    up.add_argument("--no-train", action="store_true", help="skip training the first model")

    sub.add_parser("down", parents=[common], help="stop every service by pid")

    sub.add_parser(
        "rollback", parents=[common], help="revert every fault a killed run left behind"
    )

    status = sub.add_parser("status", parents=[common], help="show each service")
    status.add_argument("--json", action="store_true", help="machine-readable output")

    gameday = sub.add_parser("gameday", parents=[common], help="up, run every suite, report, down")
    gameday.add_argument("--reports", type=Path, default=Path("reports"),
                         help="where the summary goes (default: reports/)")  # fmt: skip
    gameday.add_argument("--keep-up", action="store_true", help="leave the stack running")
    gameday.add_argument("--no-monitoring", action="store_true", help="skip Prometheus & co.")
    gameday.add_argument("--suite", action="append", dest="suites", metavar="NAME",
                         help="run only this suite (repeatable)")  # fmt: skip
    return parser


def cmd_up(args: argparse.Namespace) -> int:
    target = LocalTarget(args.state_dir, monitoring=not args.no_monitoring)
    target.up(train=not args.no_train)
    print(f"stack up; API {target.endpoints.api_url}")
    return ExitCode.OK


def cmd_down(args: argparse.Namespace) -> int:
    LocalTarget(args.state_dir).down()
    return ExitCode.OK


def cmd_rollback(args: argparse.Namespace) -> int:
    from opsdrill.faults.rollback import rollback

    reverted = rollback(LocalTarget(args.state_dir))
    print(f"{len(reverted)} fault(s) reverted" if reverted else "no fault to revert")
    return ExitCode.OK


def cmd_status(args: argparse.Namespace) -> int:
    target = LocalTarget(args.state_dir)
    rows = target.status()
    if args.json:
        print(json.dumps({
            "state_dir": str(target.state_dir),
            "healthy": all(r.healthy for r in rows),
            "services": [vars(r) for r in rows],
            "missing": target.missing_monitoring(),
        }, indent=2))  # fmt: skip
    else:
        print(f"{'service':<18} {'state':<9} {'health':<9} {'pid':>7}  url")
        for r in rows:
            state = "running" if r.running else "stopped"
            health = "healthy" if r.healthy else "-" if not r.running else "UNHEALTHY"
            print(f"{r.name:<18} {state:<9} {health:<9} {r.pid or '-':>7}  {r.url or ''}")
        for name in target.missing_monitoring():
            print(f"{name:<18} {'absent':<9} {'-':<9} {'-':>7}  (package not installed)")
    return ExitCode.OK if all(r.healthy for r in rows) else ExitCode.FAILED


def cmd_gameday(args: argparse.Namespace) -> int:
    from opsdrill.gameday import GameDay

    day = GameDay(
        LocalTarget(args.state_dir, monitoring=not args.no_monitoring),
        reports_root=args.reports,
        keep_up=args.keep_up,
        only=args.suites,
    )
    return day.run()


COMMANDS = {
    "up": cmd_up,
    "down": cmd_down,
    "status": cmd_status,
    "rollback": cmd_rollback,
    "gameday": cmd_gameday,
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
