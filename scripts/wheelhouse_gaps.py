"""Requirements the image's Python needs that a wheelhouse built by a newer host Python lacks.

`pip wheel` evaluates environment markers for the interpreter it runs on: a dependency marked
`python_full_version < "3.11.3"` (redis's async-timeout) is left out on a 3.11.7 host, and the
image's Debian 3.11.2 then cannot install. This reads every wheel's Requires-Dist, evaluates
the markers for the image's interpreter and prints, one a line, the requirements no wheel in
the wheelhouse satisfies (for `pip wheel` to add; run it again until it prints nothing).

    python scripts/wheelhouse_gaps.py WHEELHOUSE PYTHON_FULL_VERSION
"""

from __future__ import annotations

import sys
import zipfile
from email.parser import HeaderParser
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename


def gaps(wheelhouse: Path, python: str) -> list[str]:
    env = {"python_full_version": python, "python_version": ".".join(python.split(".")[:2]),
           "extra": ""}  # fmt: skip
    have = {}
    for wheel in wheelhouse.glob("*.whl"):
        name, version, _, _ = parse_wheel_filename(wheel.name)
        have[canonicalize_name(name)] = version
    missing: set[str] = set()
    for wheel in wheelhouse.glob("*.whl"):
        with zipfile.ZipFile(wheel) as zf:
            meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
            headers = HeaderParser().parsestr(zf.read(meta).decode())
        for line in headers.get_all("Requires-Dist") or []:
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate(env):
                continue
            version = have.get(canonicalize_name(req.name))
            if version is None or not req.specifier.contains(version, prereleases=True):
                missing.add(str(Requirement(f"{req.name}{req.specifier}")))
    return sorted(missing)


if __name__ == "__main__":
    print("\n".join(gaps(Path(sys.argv[1]), sys.argv[2])))
