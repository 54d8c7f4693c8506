"""Render `index.html` for a run: verdict, suites, skips, SLOs, drills, runbook coverage."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from opsdrill.drill.incident import Incident
from opsdrill.report.collect import RunArtefacts
from opsdrill.report.drills import DrillView, drill_view, mttr_by_procedure
from opsdrill.report.plots import drill_plot, load_percentile_plot, png_data_uri
from opsdrill.report.slo_view import GateRun, gate_runs, gate_verdict, pct

__all__ = ["build_report"]

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1000px;color:#222}
h1{margin-bottom:.2rem} h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{border:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}
td{overflow-wrap:anywhere} /* long test ids and reasons wrap inside the page width */
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
            "FAILED": "fail", "error": "fail", "skipped": "skip", "INCOMPLETE": "skip",
            "succeeded": "pass"}.get(
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
    """A gate run that is INCONCLUSIVE fails the gate (red); an SLO row that is INCONCLUSIVE
    or SKIPPED was not judged (amber)."""
    return {"PASS": "pass", "MET": "pass", "FAIL": "fail", "BREACHED": "fail", "ERROR": "fail",
            "INCONCLUSIVE": "fail"}.get(verdict.upper(), "skip")  # fmt: skip


def _row_class(verdict: str) -> str:
    return "skip" if verdict.upper() == "INCONCLUSIVE" else _slo_class(verdict)


def _slo(run: RunArtefacts) -> str:
    """The load gate's verdict per profile and SLO (load/slo.json): the evidence each rests on."""
    slo = run.slo
    if not slo:
        return ""
    runs = gate_runs(slo)
    gate = gate_verdict(slo)
    head = (
        f"<p>Load gate <b class='{_slo_class(gate)}'>{_e(gate)}</b>"
        + (f" over {len(runs)} profiles" if len(runs) > 1 else "")
        + ". An SLO is MET only when the one-sided bound on its bad-event ratio is within the "
        "error budget, BREACHED when the bound is beyond it, INCONCLUSIVE when the run had too "
        "few events to tell; a run below its configured load is inconclusive and fails the "
        "gate.</p>"
    )
    return (
        "<h2>Service level objectives</h2>" + head + "".join(_gate_run(g, len(runs)) for g in runs)
    )


def _gate_run(g: GateRun, n_runs: int) -> str:
    rows = "".join(
        f"<tr><td>{_e(r.slo)}</td><td>{_e(r.objective)}</td>"
        f"<td class='{_row_class(r.verdict)}'>{_e(r.verdict)}</td>"
        f"<td class=num>{_e(pct(r.good_ratio))}</td><td>{_e(r.bound)}</td>"
        f"<td class=num>{_e(r.events)}</td>"
        f"<td>{_e(r.measured)}"
        + (f"<br><small>{_e(r.why)}</small>" if r.why else "")
        + f"</td><td>{_e(r.budget)}</td></tr>"
        for r in g.rows
    )
    name = f"profile <code>{_e(g.profile)}</code>: " if g.profile and n_runs == 1 else ""
    late = f", {g.late_count} sent late" if g.late_count is not None else ""
    load = (
        f"<p>{name}{'run' if name else 'Run'} "
        f"<b class='{_slo_class(g.verdict)}'>{_e(g.verdict)}</b>: "
        f"{_e(g.achieved_rate)} of {_e(g.target_rate)} requests/s "
        f"achieved ({_e(g.achieved_count)} of {_e(g.target_count)} due requests sent on "
        f"time{_e(late)}) over {_e(g.duration_s)} s"
        + (f"; {_e(g.load_problem)}" if g.load_problem else "")
        + ".</p>"
    )
    title = f"<h3>Profile {_e(g.profile)}</h3>" if g.profile and n_runs > 1 else ""
    return (
        title
        + load
        + "<table><tr><th>SLO</th><th>objective</th><th>verdict</th><th>measured good</th>"
        "<th>confidence bound</th><th>events</th><th>measured, and why not judged</th>"
        f"<th>error budget burned by this run, and what it means for the window</th></tr>"
        f"{rows}</table>"
    )


def _drills(run: RunArtefacts) -> str:
    if not run.incidents:
        return ""
    rows, figures = [], []
    views = [drill_view(inc) for inc in run.incidents]
    for inc, v in zip(run.incidents, views, strict=True):
        prod = v.mttd_alert_production_seconds
        rows.append(
            f"<tr><td>{_e(v.drill)}</td><td>{_e(v.runbook)}</td>"
            f"<td>{_e(inc.severity)}</td>"
            f"<td class='{'pass' if v.passed else 'fail'}'>{'PASS' if v.passed else 'FAIL'}</td>"
            f"<td>{_e(v.procedure or '–')}</td>"
            f"<td class=num>{_fmt_s(v.mttd_seconds)}</td>"
            f"<td class=num>{_fmt_s(v.mttd_alert_seconds)}"
            + (
                f"<br><small>production ≈ {_fmt_s(prod)}</small>"
                if prod is not None and prod != v.mttd_alert_seconds
                else ""
            )
            + f"</td><td class=num>{_fmt_s(v.mttd_probe_seconds)}</td>"
            f"<td class=num>{_fmt_s(v.mttr_seconds)}</td>"
            f"<td class=num>{v.failed_probes}/{v.total_probes}</td>"
            f"<td>{_e(inc.fault)}</td></tr>"
        )
        figures.append(_drill_detail(inc, run.load_during.get(inc.incident_id)))
    return (
        "<h2>Drills</h2><p>MTTD runs from the end of the injection to the first of the "
        "runbook's detectors; the alert's and the harness probe's are shown apart. The embedded "
        "stack shortens alert rule windows, so the alert's MTTD at production scale is shown "
        "under it. MTTR runs from the start of the injection to the steady state restored by "
        "the runbook's procedure, before the harness reverts anything.</p>"
        "<table><tr><th>drill</th><th>runbook</th><th>severity</th><th>verdict</th>"
        "<th>recovery procedure</th><th>MTTD</th><th>alert MTTD</th><th>probe MTTD</th>"
        "<th>MTTR</th><th>failed probes</th><th>fault</th></tr>"
        f"{''.join(rows)}</table>{_mttr_by_procedure(views)}{''.join(figures)}"
    )


def _mttr_by_procedure(views: list[DrillView]) -> str:
    rows = "".join(
        f"<tr><td>{_e(p.procedure)}</td><td>{_e(', '.join(p.drills))}</td>"
        f"<td class=num>{_fmt_s(p.median)}</td><td class=num>{_fmt_s(p.worst)}</td>"
        f"<td class='{'fail' if p.not_recovered else 'none'}'>"
        f"{_e(', '.join(p.not_recovered) or '–')}</td></tr>"
        for p in mttr_by_procedure(views)
    )
    return (
        "<h3>MTTR by recovery procedure</h3><table><tr><th>procedure</th><th>drills</th>"
        "<th>median MTTR</th><th>worst MTTR</th><th>not recovered by it</th></tr>"
        f"{rows}</table>"
    )


def _recovery(v: DrillView) -> str:
    """The procedure's steps with their durations, or why there is none."""
    if v.rode_it_out:
        why = v.recovered_by or "no procedure; the stack did not ride it out"
        return f"<p><b>Recovery</b>: rode it out — {_e(why)}.</p>"
    if not v.procedure:
        return ""
    steps = "".join(
        f"<tr><td>{_e(s.step)}</td><td class=num>{_fmt_s(s.duration)}</td>"
        f"<td class='{_cls(s.status)}'>{_e(s.status)}</td><td>{_e(s.result)}</td></tr>"
        for s in v.steps
    )
    by = (
        "restored by it"
        if v.recovered_by == v.procedure
        else v.recovered_by or "NOT restored by the procedure"
    )
    return (
        f"<p><b>Recovery</b>: {_e(v.procedure)}; steady state {_e(by)}.</p>"
        "<table><tr><th>step</th><th>took</th><th>status</th><th>result</th></tr>"
        f"{steps}</table>"
    )


def _detection(inc: Incident, v: DrillView) -> str:
    """Each detector: when it said yes after the injection, or that it was skipped and why."""
    start = next((e["t"] for e in inc.timeline if e.get("name") == "injected"), None)
    skipped = {s.split(": skipped: ", 1)[0]: s for s in v.skipped_detectors}
    rows = []
    for d in inc.detections:
        name, t = str(d.get("detector", "?")), d.get("t")
        if name in skipped:
            when = f"<td class=skip>{_e(skipped.pop(name).split(': ', 1)[1])}</td>"
        elif t is None or start is None:
            when = "<td class=fail>never</td>"
        else:
            # polled from the end of the injection: a yes that rounds earlier is 0, as in MTTD
            when = f"<td class=num>{_fmt_s(max(0.0, round(t - start, 3)))}</td>"
        rows.append(f"<tr><td>{_e(name)}</td><td>{_e(d.get('kind', ''))}</td>{when}"
                    f"<td>{_e(d.get('note', ''))}</td></tr>")  # fmt: skip
    rows += [f"<tr><td colspan=4 class=skip>{_e(s)}</td></tr>" for s in skipped.values()]
    if not rows:
        return ""
    inj = v.injection_seconds
    return (
        "<p><b>Detection</b>"
        + (f" (the injection itself took {_fmt_s(inj)}, not counted)" if inj is not None else "")
        + ":</p><table><tr><th>detector</th><th>kind</th><th>after injection</th><th>note</th>"
        f"</tr>{''.join(rows)}</table>"
    )


def _drill_detail(inc: Incident, load: dict[str, Any] | None = None) -> str:
    v = drill_view(inc)
    png = drill_plot(inc)
    img = f"<img alt='latency plot of {_e(inc.drill)}' src='{png_data_uri(png)}'>" if png else ""
    events = "".join(
        f"<tr><td class=num>{e['t']:.3f}</td><td>{_e(e['name'])}</td>"
        f"<td>{_e(e['detail'])}</td></tr>"
        for e in inc.timeline
    )
    errors = "".join(f"<li class=fail>{_e(x)}</li>" for x in inc.errors)
    return (
        f"<h3>{_e(inc.title or inc.drill)} <small>{_e(inc.incident_id)}</small></h3>"
        f"{_recovery(v)}{_detection(inc, v)}{img}{_load_during(inc, load)}"
        "<details><summary>timeline</summary><table><tr><th>t (s)</th><th>event</th>"
        f"<th>detail</th></tr>{events}</table></details>" + (f"<ul>{errors}</ul>" if errors else "")
    )


def _load_during(inc: Incident, load: dict[str, Any] | None) -> str:
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
    alt = f"load percentiles during {_e(inc.drill)}"
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
    applicable = sum(1 for r in run.coverage.values() if r["result"] != "not applicable")
    skipped = [p for p, r in run.coverage.items() if r["result"] == "skipped"]
    fleet = any(r.get("hosts") for r in run.coverage.values())  # checks ran once per host
    rows = "".join(
        f"<tr><td>{_e(r['procedure'])}</td><td>{_e(r.get('title', ''))}</td>"
        f"<td class='{_cls(r['result'])}'>{_e(r['result'])}"
        + (f"<br><small>{_e(r['reason'])}</small>" if r.get("reason") else "")
        + "</td>"
        f"<td class=num>{len(r.get('tests', {}))}</td>"
        + (f"<td>{_hosts(r.get('hosts') or {})}</td>" if fleet else "")
        + "</tr>"
        for r in run.coverage.values()
    )
    return (
        f"<h2>Runbook coverage</h2><p>{covered} of {applicable} applicable procedures covered "
        "by a test that ran"
        + (f"; skipped, no test ran: {_e(', '.join(skipped))}" if skipped else "")
        + ".</p><table><tr><th>procedure</th><th>title</th><th>result</th><th>tests</th>"
        + ("<th>per host</th>" if fleet else "")
        + f"</tr>{rows}</table>"
    )


def _hosts(hosts: dict[str, str]) -> str:
    """A fleet's hosts with each one's result (checks of one machine ran on every host)."""
    return "<br>".join(
        f"<span class='{_cls(o)}'>{_e(h)}: {_e(o)}</span>" for h, o in sorted(hosts.items())
    )
