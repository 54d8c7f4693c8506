"""A systemd host reached over ssh (`host = "ssh://ops@HOST:PORT"` in a target file).

The runbook's production layout: services are systemd units, controlled with
`sudo systemctl ...` by a non-root ops user whose sudo rights name exactly those commands;
commands run where the services run, as the unit's own user (`sudo -u`); the ops CLI is the
command the target file names (`ops_command`, run as the app's user). Everything goes over one
ssh connection (`opsdrill.targets.host.ssh`); the fault journal stays on opsdrill's machine.

    host = "ssh://ops@127.0.0.1:2222"
    ssh_key = "~/.ssh/opsdrill"             # the key, never a password
    known_hosts = "~/.ssh/known_hosts"      # the host's key, recorded when it was created
    ops_command = "ts-forecast-ops"         # run as the api unit's user
    app_command = "ts-forecast-app"         # the app's entry point with the unit's environment
"""

from __future__ import annotations

import contextlib
import functools
import shlex
import signal
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import testinfra
import yaml

from opsdrill.errors import (
    CapabilityMissing,
    OpsdrillError,
    PrivilegeError,
    ServiceError,
    UsageError,
)
from opsdrill.probes.prometheus import config_yaml, flags
from opsdrill.recovery.port_owner import ports_of
from opsdrill.state import journal_home
from opsdrill.targets.base import ProxyHops
from opsdrill.targets.drill_parts import Say
from opsdrill.targets.file.target import FileTarget
from opsdrill.targets.files import ServiceFiles
from opsdrill.targets.host.cgroup import CPU_SCRIPT, MEMORY_SCRIPT, PAGE, UNLIMITED
from opsdrill.targets.host.files import SshFiles
from opsdrill.targets.host.proxy import PROXIES, parse_host_proxy
from opsdrill.targets.host.ssh import SshHost
from opsdrill.targets.host.units import HostUnit
from opsdrill.targets.model import ExecResult, MemoryUsage, ProxyLink
from opsdrill.targets.service_process import ServiceProcess

__all__ = ["HostTarget"]

#: services whose processes live in another service's unit ("worker": the app's children)
SAME_UNIT = {"worker": "api"}
SHORTENED_JSON = "shortened.json"  # the drill-scale rules' record (drill/alert_scale.py)


class HostTarget(FileTarget):
    """A target file whose host is reached over ssh: the seam implemented with systemd."""

    def __init__(self, path: Path, raw: Mapping[str, Any]) -> None:
        super().__init__(path, raw)
        where = f"target file {path}"
        for key in ("ssh_key", "known_hosts"):
            if not isinstance(raw.get(key), str):
                raise UsageError(f"{where}: an ssh:// host needs {key} = PATH")
        base = path.parent
        self.ssh = SshHost(
            self.host_spec,
            (base / Path(raw["ssh_key"]).expanduser()),
            (base / Path(raw["known_hosts"]).expanduser()),
        )
        self.ops_command = shlex.split(str(raw.get("ops_command", "")))
        self.app_command = shlex.split(str(raw.get("app_command", "")))
        data_fs = raw.get("data_filesystem")
        if data_fs is not None and not (isinstance(data_fs, str) and data_fs.startswith("/")):
            raise UsageError(
                f"{where}: data_filesystem must be an absolute path on the host, the mount "
                "point of a size-limited filesystem holding the app's data (e.g. its models)"
            )
        self.data_filesystem = data_fs
        self.toxiproxy = parse_host_proxy(path, raw)
        self._services = {
            name: HostUnit(name, self, svc.systemd, svc.pidfile, svc.address)  # type: ignore[attr-defined]
            for name, svc in self._services.items()
        }

    @property
    def host(self) -> Any:
        if self._host is None:
            spec, kwargs = self.ssh.testinfra_spec()
            self._host = testinfra.get_host(spec, **kwargs)
        return self._host

    @property
    def kind(self) -> str:
        return "host"

    @property
    def service_control(self) -> bool:
        return True

    @property
    def journal_dir(self) -> Path:
        return journal_home("host", self.name)

    @property
    def capabilities(self) -> frozenset[str]:
        """A host fills only a filesystem its target file names (`data_filesystem`), and has
        Toxiproxy only where its target file says where (`[toxiproxy]`)."""
        have = set(super().capabilities)
        if not self.data_filesystem:
            have.discard("data_filesystem")
        if self.toxiproxy is None:
            have.discard("toxiproxy")
        return frozenset(have)

    def rule_scaling_text(self) -> str | None:
        """The `shortened.json` beside the host Prometheus' config file or its rule files,
        read over ssh; None when the host runs production's rule windows."""
        url = self.endpoints.prometheus_url
        if url is None or "prometheus" not in self._services:
            return None
        try:
            config = PurePosixPath(flags(url).get("config.file", "/etc/prometheus/prometheus.yml"))
            patterns = yaml.safe_load(config_yaml(url)).get("rule_files") or []
            folders = [config.parent]
            folders += [(config.parent / str(p)).parent for p in patterns]  # relative: the config's
            files = self.files("prometheus")
            for folder in dict.fromkeys(folders):
                if files.exists(folder / SHORTENED_JSON):
                    return files.read_text(folder / SHORTENED_JSON)
        except (OpsdrillError, OSError, ValueError, AttributeError):
            return None
        return None

    def proxy_for(self, link: str) -> ProxyLink:
        if link not in PROXIES:
            raise UsageError(f"unknown link {link!r}: use one of {', '.join(PROXIES)}")
        if self.toxiproxy is None:
            return super().proxy_for(link)
        return ProxyLink(toxiproxy_url=self.toxiproxy.url, proxy=PROXIES[link], link=link)

    @contextlib.contextmanager
    def ensure_proxy(self, say: Say = print) -> Iterator[ProxyHops]:
        """The host's own Toxiproxy (`[toxiproxy]`): in place already, nothing to undo."""
        if self.toxiproxy is None:
            with super().ensure_proxy(say) as hops:  # raises CapabilityMissing
                yield hops
            return
        yield self.toxiproxy.hops(self.endpoints.dsn)

    @contextlib.contextmanager
    def ensure_data_fs(self, size: str, say: Say = print) -> Iterator[Path]:
        """The filesystem the target file names as `data_filesystem`, checked to be a mount of
        its own (a real disk is never filled: DiskFull refuses one over its size limit);
        `size` is the host's, not opsdrill's to choose."""
        path = self.data_filesystem
        if path is None:
            raise CapabilityMissing(
                f"target file {self.path} names no data_filesystem (a size-limited mount "
                "holding the app's data) for the disk-full drill"
            )
        done = self.run(["findmnt", "-n", "-o", "FSTYPE,SIZE", "--target", path])
        mounted = self.run(["mountpoint", "-q", path]).ok
        if not done.ok or not mounted:
            raise CapabilityMissing(
                f"{path} on {self.ssh.spec} is not a mount point of its own "
                f"({done.output(200) or 'not mounted'}): data_filesystem must name one"
            )
        say(f"data filesystem {path} on {self.ssh.spec}: {done.stdout.strip()}")
        yield Path(path)

    # -- systemd ---------------------------------------------------------------------------
    def run(self, argv: Sequence[str], *, timeout: float = 60.0, **kw: Any) -> ExecResult:
        return self.ssh.run(argv, timeout=timeout, **kw)

    def systemctl(self, *args: str) -> ExecResult:
        """`sudo -n systemctl ARGS`; a missing sudo right or a failure is one sentence."""
        done = self.run(["sudo", "-n", "systemctl", *args])
        if done.ok:
            return done
        command = shlex.join(["systemctl", *args])
        if "password is required" in done.stderr or "not allowed" in done.stderr:
            raise PrivilegeError(
                f"the ssh user may not run `sudo {command}` on {self.ssh.spec}: "
                "add it to the host's sudoers"
            )
        unit = args[-1] if args and args[0] in ("start", "restart") else None
        tail = f"; {self.journal_tail(unit)}" if unit else ""
        raise ServiceError(f"`{command}` failed on {self.ssh.spec}: {done.output(300)}{tail}")

    def journal_tail(self, unit: str, lines: int = 6) -> str:
        """The unit's last journal lines (the ops user reads the journal: systemd-journal),
        which say why a start failed; what it cannot read is said instead."""
        done = self.run(["journalctl", "-u", unit, "-n", str(lines), "--no-pager", "-o", "cat"])
        text = " | ".join(line.strip() for line in done.stdout.splitlines() if line.strip())
        if not done.ok or not text:
            return f"its journal is not readable here (`journalctl -u {unit}`: {done.output(120)})"
        return f"the unit's journal ends: {text[-700:]}"

    def unit_property(self, unit: str, prop: str) -> str:
        return self.run(["systemctl", "show", "-p", prop, "--value", unit]).stdout.strip()

    def check_units(self) -> None:
        """Every unit the target file names exists on the host (a typo is one sentence)."""
        for svc in self._services.values():
            if svc.systemd and self.unit_property(svc.systemd, "LoadState") == "not-found":
                raise UsageError(
                    f"target file {self.path}: services.{svc.name}.systemd = {svc.systemd!r} "
                    f"is not a unit on {self.ssh.spec} (systemctl list-units)"
                )

    def _unit_of(self, service: str) -> str:
        svc = self.service(SAME_UNIT.get(service, service))
        if not svc.systemd:
            raise CapabilityMissing(f"service {service!r} has no systemd unit in {self.path}")
        return svc.systemd

    @functools.cache  # noqa: B019 (a target lives for one session)
    def unit_user(self, service: str) -> str:
        return self.unit_property(self._unit_of(service), "User") or "root"

    @functools.cache  # noqa: B019 (a target lives for one session)
    def files_user(self, service: str) -> str | None:
        """Whom a service's files are read and written as: the unit's own user when the ssh
        user may become it (sudoers: the app's and the database's), else None, the ssh user
        itself, who reads what the unit's configuration leaves readable (Prometheus's rule
        files, which the ops user may not `sudo -u prometheus` to read)."""
        user = self.unit_user(service)
        return user if self.run(["sudo", "-n", "-l", "-u", user, "sh"]).ok else None

    # -- the seam ----------------------------------------------------------------------------
    def exec(
        self,
        service: str,
        argv: Sequence[str],
        *,
        timeout: float = 60.0,
        user: str | None = None,
        env: Mapping[str, str] | None = None,
        detach: bool = False,
    ) -> ExecResult:
        """`sudo -n -u USER` on the host; detached commands are started by `setsid`."""
        who = user or self.unit_user(service)
        cmd = ["env", *(f"{k}={v}" for k, v in (env or {}).items()), *argv]
        if detach:
            line = f"setsid {shlex.join(cmd)} >/dev/null 2>&1 </dev/null & echo $!"
            cmd = ["sh", "-c", line]
        return self.run(["sudo", "-n", "-u", who, "--", *cmd], timeout=timeout)

    def ops(self, *args: str, timeout: float = 600.0, database: str | None = None) -> ExecResult:
        """The target file's `ops_command` as the app's user. `database` goes to the CLI as
        `--database NAME`: one that does not know the option refuses (exit 2), so a scratch
        restore can never land in the app's own database."""
        if not self.ops_command:
            raise CapabilityMissing(
                f"target file {self.path} names no ops_command (the stack's ops CLI on the host)"
            )
        chosen = ["--database", database] if database is not None else []
        return self.exec("api", [*self.ops_command, *chosen, *args], timeout=timeout)

    def app_main(self, *args: str, timeout: float = 60.0) -> ExecResult:
        """The target file's `app_command` as the app's user: the unit's interpreter and
        environment file are the host's business, so a wrapper it ships names them."""
        if not self.app_command:
            raise CapabilityMissing(
                f"target file {self.path} names no app_command (the app's entry point with the "
                "unit's environment, e.g. a wrapper running `python -m nf_auto_runner.app.main`)"
            )
        return self.exec("api", [*self.app_command, *args], timeout=timeout)

    def listen_port(self, service: str) -> int:
        """Read on the host: the port the unit's main process listens on (the target file's
        URLs may name a balancer's or a published port); the URL's port when it is down."""
        named = urlsplit(self.service(service).url or "").port
        pid = self.service(service).pid()
        ports = ports_of(self, service, pid) if pid is not None else []
        if len(ports) == 1 or (ports and named not in ports):
            return ports[0]
        if named is not None:
            return named
        raise CapabilityMissing(
            f"target {self.name!r}: {service} listens on no port on the host (is it running?) "
            "and its service table names no url"
        )

    def clear_leftovers(self, service: str) -> list[str]:
        """After `systemctl stop` the unit's cgroup is empty; what can be left is the app's pid
        file (a SIGKILLed app never removes it). Removed, or shown gone; a live app process
        it still names (outside the unit) is killed by that pid, its start time checked."""
        home = self.endpoints.home
        if service != "api" or home is None:
            return []
        path = home / "run" / "app.pid"
        files = self.files("api")
        try:
            text = files.read_text(path).strip()
        except FileNotFoundError:
            return [f"no pid file left: {path} (the app removes it when it stops cleanly)"]
        actions = []
        holder = ServiceProcess.at(self, "api", int(text)) if text.isdigit() else None
        if holder is not None:
            try:
                cmdline = files.read_text(f"/proc/{holder.pid}/cmdline")
            except FileNotFoundError:
                cmdline = ""
            if "nf_auto_runner.app.main" in cmdline and holder.signal(signal.SIGKILL):
                holder.wait_gone(10.0)
                actions.append(f"killed leftover pid {holder.pid} from {path}")
        files.remove(path)
        actions.append(f"removed pid file {path}")
        return actions

    def files(self, service: str) -> ServiceFiles:
        return SshFiles(self, service)

    def set_memory_limit(self, service: str, limit_bytes: int | None) -> int | None:
        """`systemctl set-property --runtime UNIT MemoryMax=`: gone at the next reboot too.

        On cgroup v1 the kernel refuses a limit below what the group uses now (EBUSY, which
        systemd only logs), so the limit is read back: one that did not take is an error."""
        self.require_destructive(f"change {service}'s memory limit", self.allow_destructive)
        unit = self._unit_of(service)
        before = self.unit_property(unit, "MemoryMax")
        value = "infinity" if limit_bytes is None else str(int(limit_bytes))
        self.systemctl("set-property", "--runtime", unit, f"MemoryMax={value}")
        now = self.memory(service).limit_bytes
        if limit_bytes is not None and (now is None or abs(now - limit_bytes) >= PAGE):
            raise ServiceError(
                f"MemoryMax={value} on {unit} did not reach the kernel (its limit is {now}): "
                "the unit uses more memory than that now (cgroup v1 refuses it)"
            )
        return None if before in ("", "infinity") else int(before)

    def stack_cpu_percent(self, window: float = 1.0) -> float:
        """The units' processes' CPU time over `window` seconds, as a share of the host's CPUs."""
        units = sorted({s.systemd for s in self._services.values() if s.systemd})
        done = self.run(["sh", "-c", CPU_SCRIPT, "cpu", str(window), *units])
        fields = done.stdout.split()
        if not done.ok or len(fields) != 6:
            raise CapabilityMissing(
                f"no CPU figure for {', '.join(units)} on {self.ssh.spec}: {done.output(200)}"
            )
        before, after, t0, t1, cpus, hz = (int(f) for f in fields)
        return 100.0 * (after - before) / hz / ((t1 - t0) / 1e9 * cpus)

    def memory(self, service: str) -> MemoryUsage:
        """The unit's memory cgroup as the kernel has it: limit, peak, processes."""
        limit, peak, procs, used, workers = self._memory_figures(service)
        if service == "worker":  # the unit holds the app too: its training workers only
            procs = workers
        return MemoryUsage(None if limit >= UNLIMITED else limit, peak, procs, used)

    def memory_used(self, service: str) -> int:
        """What the unit's memory cgroup is charged now (a limit below it is refused on v1)."""
        return self._memory_figures(service)[3]

    def _memory_figures(self, service: str) -> tuple[int, int, int, int, int]:
        group = self.unit_property(self._unit_of(service), "ControlGroup")
        done = self.run(["sh", "-c", MEMORY_SCRIPT, "memory", group]) if group else None
        if done is None or not done.ok:
            return UNLIMITED, 0, 0, 0, 0
        limit, peak, procs, used, workers = (int(x) for x in done.stdout.split())
        return limit, peak, procs, used, workers

    def oom_kills(self, service: str) -> int:
        """The unit's cgroup's OOM-kill counter (cgroup v2 memory.events, v1 oom_control)."""
        unit = self._unit_of(service)
        group = self.unit_property(unit, "ControlGroup")
        if not group:
            return 0
        script = (
            'for f in "/sys/fs/cgroup$1/memory.events" '
            '"/sys/fs/cgroup/memory$1/memory.oom_control"; do '
            '[ -r "$f" ] && exec awk \'$1 == "oom_kill" {print $2}\' "$f"; done; echo 0'
        )
        done = self.run(["sh", "-c", script, "oom", group])
        return int(done.stdout.strip() or 0)
