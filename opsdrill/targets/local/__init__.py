"""The embedded target: the whole reference stack as local processes in a state directory.

STATE_DIR/
  state.json, secrets.json   ports, pids (with start times), generated secrets
  pg/data, pg/socket         the PostgreSQL cluster (owned by `postgres` when run as root)
  home/                      NF_HOME of the app: conf/, logs/app/, models/, backups/
  monitoring/                Prometheus and Alertmanager configs and data
  logs/<service>.log         each service's stdout and stderr
  options.json               opt-ins chosen at `up` (data filesystem, proxy, worker cgroup)
  data-fs.img                with a data filesystem: the ext4 image loop-mounted on home/
  proxy/proxies.json         with the proxy: the Toxiproxy proxies, populated at its start

Opt-ins, kept in options.json so every later `LocalTarget(state_dir)` (rollback, the plugin)
sees the same stack: `data_fs_size` (env OPSDRILL_DATA_FS_SIZE, `opsdrill up --data-fs-size`)
puts NF_HOME on a size-limited ext4 filesystem so a disk can really fill up; `proxy` (env
OPSDRILL_PROXY=1, `opsdrill up --proxy`) puts Toxiproxy between the app and PostgreSQL and in
front of the API; `monitoring` (env OPSDRILL_MONITORING=0, `opsdrill up --no-monitoring` to
turn it off) runs Prometheus, Alertmanager and the exporters where installed;
`worker_cgroup` (on by default as root with a memory controller, cgroup v1 or v2: see
`opsdrill.targets.local.worker_cgroup`) gives training workers a memory cgroup, unlimited until a
fault lowers its limit. A drill that needs the proxy or the data filesystem on a stack started
without them puts them in place for its session (`ensure_proxy`, `ensure_data_fs`).

The modules, one part each: target (LocalTarget: the seam, up/down/destroy), options
(StackOptions and how each opt-in is resolved), records (state.json: ports, pids), specs
(which services, in what order, and how each is run), proxies (the Toxiproxy hops),
data_fs (the loop-mounted image), parts (the in-place parts, journaled like faults), files
(ServiceFiles on this machine). Outside opsdrill/targets/ none of them is imported by name:
the seam test holds it.
"""

from __future__ import annotations

from opsdrill.targets.local.data_fs import DataFilesystem, parse_size
from opsdrill.targets.local.target import LocalTarget
from opsdrill.targets.local.worker_cgroup import WorkerCgroup

__all__ = ["DataFilesystem", "LocalTarget", "WorkerCgroup", "parse_size"]
