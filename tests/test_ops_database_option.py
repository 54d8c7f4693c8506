"""The ops CLI's `--database NAME`: another database of the same server (a scratch copy a
drill restores a backup into). A CLI without it refuses the option, so a scratch restore can
never land in the app's own database; a name that is not plain is refused too."""

from __future__ import annotations

from pathlib import Path

import pytest
from nf_auto_runner.ops import cli


def test_database_names_another_database_of_the_same_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NF_HOME", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:pw@127.0.0.1:5432/ts_forecast_system")
    monkeypatch.setenv("NF_API_KEY", "k" * 16)
    monkeypatch.setattr(cli, "_DATABASE", None)
    assert cli._settings().database_url.endswith("/ts_forecast_system")
    monkeypatch.setattr(cli, "_DATABASE", "opsdrill_verify")
    assert cli._settings().database_url == "postgresql://app:pw@127.0.0.1:5432/opsdrill_verify"


@pytest.mark.parametrize("name", ["a b", "x;drop", "1st", "a" * 64])
def test_a_name_that_is_not_plain_is_refused(name: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--database", name, "migrate"])
    assert exit_.value.code == 2
    assert "is not a plain database name" in capsys.readouterr().err
