"""Shell scripts a host target runs over ssh to read a unit's cgroup (v1 or v2) and the CPU
time of its processes, with the figures they need; one ssh round trip each."""

from __future__ import annotations

__all__ = ["CPU_SCRIPT", "MEMORY_SCRIPT", "PAGE", "UNLIMITED"]

#: a memory limit at least this large is no limit (v1 says 2^63 rounded to pages, v2 "max")
UNLIMITED = 2**62
PAGE = 4096  # the kernel keeps a limit in whole pages
#: `before after t0 t1 cpus hz`: the CPU ticks (utime+stime, and their reaped children's) of
#: every process of the units ($2...) $1 seconds apart: read from /proc, as cgroup v1 hosts
#: with cpu and cpuacct mounted apart give systemd no CPUUsageNSec
CPU_SCRIPT = r"""
w=$1; shift
ticks() {
  for u in "$@"; do
    g=$(systemctl show -p ControlGroup --value "$u")
    [ -n "$g" ] || continue
    for f in "/sys/fs/cgroup/systemd$g/cgroup.procs" "/sys/fs/cgroup$g/cgroup.procs"; do
      [ -r "$f" ] && { cat "$f"; break; }
    done
  done | while read -r p; do cat "/proc/$p/stat" 2>/dev/null; done |
  awk '{sub(/^.*\) /, ""); s += $12 + $13 + $14 + $15} END {print s + 0}'
}
a=$(ticks "$@"); t0=$(date +%s%N); sleep "$w"; b=$(ticks "$@"); t1=$(date +%s%N)
echo "$a" "$b" "$t0" "$t1" "$(nproc)" "$(getconf CLK_TCK)"
"""
#: `limit peak processes used workers` of the cgroup $1 (cgroup v2, else v1's memory
#: hierarchy); workers: its processes whose command line runs a training worker (a reading)
MEMORY_SCRIPT = r"""
d=/sys/fs/cgroup$1
if [ -r "$d/memory.max" ]; then
  l=$(cat "$d/memory.max"); c=$(cat "$d/memory.current"); p=$(cat "$d/memory.peak" || echo "$c")
else
  d=/sys/fs/cgroup/memory$1
  l=$(cat "$d/memory.limit_in_bytes"); p=$(cat "$d/memory.max_usage_in_bytes")
  c=$(cat "$d/memory.usage_in_bytes")
fi
[ "$l" = max ] && l=9223372036854775807
w=0
while read -r q; do
  tr '\0' ' ' <"/proc/$q/cmdline" 2>/dev/null | grep -q nf_auto_runner.worker && w=$((w + 1))
done <"$d/cgroup.procs"
echo "$l" "$p" "$(wc -l <"$d/cgroup.procs")" "$c" "$w"
"""
