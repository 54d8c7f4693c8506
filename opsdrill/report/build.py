"""Render `index.html` for a run: verdict, suites, skips, SLOs, drills, runbook coverage."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from opsdrill.report.collect import RunArtefacts
from opsdrill.report.plots import drill_plot, load_percentile_plot, png_data_uri

__all__ = ["build_report"]

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1000px;color:#222}
h1{margin-bottom:.2rem} h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{border:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f5f5f5} td.num{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#1a7f37;font-weight:600} .fail{color:#cf222e;font-weight:600}
.skip{color:#9a6700} .none{color:#888}
.banner{padding:.6rem 1rem;border-radius:6px;font-size:1.1rem;margin:1rem 0}
.banner{background:#f0f0f0} .banner.pass{background:#dafbe1} .banner.fail{background:#ffebe9}
.banner.skip{background:#fff8c5}
img{max-width:100%} small{color:#666}
"""


def _e(value: object) -> str:
    return html.escape(str(value))


def _cls(result: str) -> str:
    return {"passed": "pass", "PASS": "pass", "PASSED": "pass", "failed": "fail", "FAIL": "fail",
            "FAILED": "fail", "error": "fail", "skipped": "skip", "INCOMPLETE": "skip"}.get(
                result, "none")  # fmt: skip


def _fmt_s(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f} s"


def build_report(run_dir: Path) -> Path:
    """Write `run_dir/index.html` from whatever artefacts the run left; return its path."""
    run = RunArtefacts.load(run_dir)
    parts = [_header(run), _suites(run), _skips(run), _slo(run), _drills(run), _coverage(run)]
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>opsdrill report — {_e(run_dir.name)}</title><style>{CSS}</style></head><body>"
        + "".join(p for p in parts if p)
        + "</body></html>\n"
    )
    out = run_dir / "index.html"
    out.write_text(page)
    return out


def _verdict(summary: dict[str, Any]) -> str | None:
    """PASSED, FAILED or INCOMPLETE; a summary from before INCOMPLETE existed has `passed`."""
    if "verdict" in summary:
        return str(summary["verdict"])
    if "passed" in summary:
        return "PASSED" if summary["passed"] else "FAILED"
    return None


def _header(run: RunArtefacts) -> str:
    s = run.summary or {}
    verdict = _verdict(s)
    if verdict is None:
        return (
            f"<h1>opsdrill report</h1><small>{_e(run.root.name)}</small>"
            "<div class='banner'>A partial run: no game-day summary, only the suites below.</div>"
        )
    unexpected = [x for x in s.get("skips", []) if not x.get("expected")]
    why = (
        f": {len(unexpected)} skipped test(s) the game-day plan does not expect on this "
        "machine, so what they show was not shown"
        if verdict == "INCOMPLETE"
        else ""
    )
    return (
        f"<h1>opsdrill report</h1><small>{_e(run.root.name)}</small>"
        f"<div class='banner {_cls(verdict)}'>Game day <b>{_e(verdict)}</b>"
        + (f" in {s['seconds']:.0f} s" if "seconds" in s else "")
        + f"{_e(why)}</div>"
    )


def _suites(run: RunArtefacts) -> str:
    suites = (run.summary or {}).get("suites", [])
    if not suites:
        return ""
    rows = "".join(
        f"<tr><td>{_e(x['name'])}</td><td class='{_cls(v := _verdict(x) or '?')}'>{_e(v)}</td>"
        f"<td class=num>{x['tests']}</td>"
        f"<td class=num>{x['failures'] + x['errors']}</td><td class=num>{x['skipped']}</td>"
        f"<td class=num>{x['seconds']:.1f}</td></tr>"
        for x in suites
    )
    failed = [
        f"<li><code>{_e(s['name'])}</code>: {_e(t)}</li>" for s in suites for t in s["failed"]
    ]
    return (
        "<h2>Suites</h2><table><tr><th>suite</th><th>verdict</th><th>tests</th><th>failed</th>"
        f"<th>skipped</th><th>seconds</th></tr>{rows}</table>"
        + (f"<p>Failed tests:</p><ul>{''.join(failed)}</ul>" if failed else "")
    )


def _skips(run: RunArtefacts) -> str:
    """Every skip with pytest's reason and whether the game-day plan expects it here."""
    s = run.summary or {}
    skips = s.get("skips", [])
    if not skips:
        return ""
    rows = "".join(
        f"<tr><td>{_e(x['suite'])}</td><td><code>{_e(x['test'])}</code></td>"
        f"<td>{_e(x['message'])}</td>"
        f"<td class='{'pass' if x['expected'] else 'fail'}'>"
        f"{'expected' if x['expected'] else 'NOT expected'}</td><td>{_e(x['why'])}</td></tr>"
        for x in skips
    )
    return (
        f"<h2>Skips</h2><p>{len(skips)} test(s) skipped; the game-day plan "
        f"(<code>{_e(s.get('plan', '?'))}</code>) expects "
        f"{sum(1 for x in skips if x['expected'])} of them on this machine.</p>"
        "<table><tr><th>suite</th><th>test</th><th>skip reason</th><th>on this machine</th>"
        f"<th>why</th></tr>{rows}</table>"
    )


def _slo_class(verdict: str) -> str:
    return {"PASS": "pass", "FAIL": "fail", "INCONCLUSIVE": "fail"}.get(verdict.upper(), "skip")


def _slo(run: RunArtefacts) -> str:
    """The load gate's verdict per SLO (load/slo.json), with the error budget it burned."""
    slo = run.slo
    if not slo:
        return ""
    rows = []
    for v in slo.get("slos", []):
        verdict = str(v.get("verdict", "?"))
        rows.append(
            f"<tr><td>{_e(v.get('slo', v.get('name', '?')))}</td>"
            f"<td>{_e(v.get('objective', ''))}</td><td>{_e(v.get('measured', ''))}</td>"
            f"<td class='{_slo_class(verdict)}'>{_e(verdict)}</td>"
            f"<td>{_e(v.get('budget', ''))}</td></tr>"
        )
    verdict = str(slo.get("verdict", "?"))
    load = (
        f"<p>Load gate <b class='{_slo_class(verdict)}'>{_e(verdict)}</b>: "
        f"{_e(slo.get('achieved_rate', '?'))} of {_e(slo.get('target_rate', '?'))} requests/s "
        f"achieved ({_e(slo.get('achieved_count', '?'))} of {_e(slo.get('target_count', '?'))} "
        f"due requests sent on time) over {_e(slo.get('duration_s', '?'))} s; a run below its "
        "target load is inconclusive and fails the gate.</p>"
    )
    return (
        "<h2>Service level objectives</h2>"
        + load
        + "<table><tr><th>SLO</th><th>objective</th><th>measured</th><th>verdict</th>"
        f"<th>error budget burned by this run, and what it means for the window</th></tr>"
        f"{''.join(rows)}</table>"
    )


def _drills(run: RunArtefacts) -> str:
    if not run.incidents:
        return ""
    rows, figures = [], []
    for inc in run.incidents:
        ok = inc.get("passed")
        rows.append(
            f"<tr><td>{_e(inc['drill'])}</td><td>{_e(inc.get('runbook', ''))}</td>"
            f"<td>{_e(inc.get('severity', ''))}</td>"
            f"<td class='{'pass' if ok else 'fail'}'>{'PASS' if ok else 'FAIL'}</td>"
            f"<td class=num>{_fmt_s(inc.get('mttd_seconds'))}</td>"
            f"<td class=num>{_fmt_s(inc.get('mttr_seconds'))}</td>"
            f"<td class=num>{inc.get('failed_probes', 0)}/{inc.get('total_probes', 0)}</td>"
            f"<td>{_e(inc.get('fault', ''))}</td></tr>"
        )
        figures.append(_drill_detail(inc, run.load_during.get(inc["incident_id"])))
    return (
        "<h2>Drills</h2><table><tr><th>drill</th><th>runbook</th><th>severity</th>"
        "<th>verdict</th><th>MTTD</th><th>MTTR</th><th>failed probes</th><th>fault</th></tr>"
        f"{''.join(rows)}</table>{''.join(figures)}"
    )


def _drill_detail(inc: dict[str, Any], load: dict[str, Any] | None = None) -> str:
    png = drill_plot(inc)
    img = f"<img alt='latency plot of {_e(inc['drill'])}' src='{png_data_uri(png)}'>" if png else ""
    events = "".join(
        f"<tr><td class=num>{e['t']:.3f}</td><td>{_e(e['name'])}</td>"
        f"<td>{_e(e['detail'])}</td></tr>"
        for e in inc.get("timeline", [])
    )
    errors = "".join(f"<li class=fail>{_e(x)}</li>" for x in inc.get("errors", []))
    return (
        f"<h3>{_e(inc.get('title', inc['drill']))} <small>{_e(inc['incident_id'])}</small></h3>"
        f"{img}{_load_during(inc, load)}"
        "<details><summary>timeline</summary><table><tr><th>t (s)</th><th>event</th>"
        f"<th>detail</th></tr>{events}</table></details>" + (f"<ul>{errors}</ul>" if errors else "")
    )


def _load_during(inc: dict[str, Any], load: dict[str, Any] | None) -> str:
    """The error budget a load burned while this drill ran, and its percentiles over time."""
    if not load:
        return ""
    info = load.get("load", {})
    rows = "".join(
        f"<tr><td>{_e(b['slo'])}</td><td>{_e(b.get('measured', ''))}</td>"
        f"<td class='{_cls(b.get('verdict', ''))}'>{_e(b.get('verdict', ''))}</td>"
        f"<td class=num>{b.get('bad', 0)}/{b.get('total', 0)}</td>"
        f"<td class=num>{b.get('burn_rate', 0):.3g}×</td>"
        f"<td class=num>{b.get('budget_consumed', 0) * 100:.3g} %</td></tr>"
        for b in load.get("budget", [])
    )
    png = load_percentile_plot(load, inc)
    alt = f"load percentiles during {_e(inc['drill'])}"
    img = f"<img alt='{alt}' src='{png_data_uri(png)}'>" if png else ""
    return (
        f"<h4>Error budget burned under load</h4><p>{_e(info.get('achieved_rate', '?'))} of "
        f"{_e(info.get('target_rate', '?'))} requests/s for {_e(info.get('duration_s', '?'))} s "
        f"around the fault (load verdict {_e(info.get('verdict', '?'))}).</p>"
        "<table><tr><th>SLO</th><th>measured</th><th>verdict</th><th>bad/total</th>"
        f"<th>burn rate</th><th>of the window's budget</th></tr>{rows}</table>"
        + img
        + (f"<small>{_e(load['history_note'])}</small>" if load.get("history_note") else "")
    )


def _coverage(run: RunArtefacts) -> str:
    if not run.coverage:
        return ""
    covered = sum(1 for r in run.coverage.values() if r.get("covered"))
    skipped = [p for p, r in run.coverage.items() if r["result"] == "skipped"]
    rows = "".join(
        f"<tr><td>{_e(r['procedure'])}</td><td>{_e(r.get('title', ''))}</td>"
        f"<td class='{_cls(r['result'])}'>{_e(r['result'])}</td>"
        f"<td class=num>{len(r.get('tests', {}))}</td></tr>"
        for r in run.coverage.values()
    )
    return (
        f"<h2>Runbook coverage</h2><p>{covered} of {len(run.coverage)} procedures covered by a "
        "test that ran"
        + (f"; skipped, no test ran: {_e(', '.join(skipped))}" if skipped else "")
        + ".</p><table><tr><th>procedure</th><th>title</th><th>result</th><th>tests</th></tr>"
        f"{rows}</table>"
    )
