"""The status page's HTML: the whole page rendered on the server from one snapshot, and the
login form.

The page is complete without JavaScript (the numbers of the moment it was served); the script
(`static/status.js`, the only script, loaded from the gateway itself as the page's
Content-Security-Policy demands) then keeps it live from `/status/events` and draws the charts
with the vendored uPlot. Every value from configuration or traffic is escaped; nothing on the
page is a credential (a snapshot holds none).
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

#: What an empty figure reads (an en dash).
_NONE = "\N{EN DASH}"
#: How a state reads on the page.
STATE_LABELS = {
    "healthy": "healthy",
    "degraded": "degraded",
    "breaker_open": "breaker open",
    "cooling_down": "cooling down",
    "probing": "probing",
}


def _num(value: float | None, digits: int = 1, unit: str = "") -> str:
    if value is None:
        return _NONE
    return f"{value:.{digits}f}{unit}"


def _pct(value: float | None) -> str:
    return _NONE if value is None else f"{value * 100:.1f}%"


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def state_text(row: Mapping[str, Any]) -> str:
    """A deployment's state in words, with the ejection's seconds left and reason."""
    state: str = row["state"]
    text = STATE_LABELS.get(state, state)
    if state in ("cooling_down", "breaker_open"):
        text += f" · {row['cooldown_seconds_left']:.0f}s left"
    if state in ("cooling_down", "breaker_open", "probing") and row["cooldown_reason"]:
        text += f" ({row['cooldown_reason']})"
    return text


def _last_error(row: Mapping[str, Any]) -> str:
    error = row["last_error"]
    if error is None:
        return _NONE
    status = f" {error['status']}" if error["status"] is not None else ""
    return f"{error['kind']}{status} · {_ago(error['seconds_ago'])}"


def _deployment_row(row: Mapping[str, Any]) -> str:
    one, five = row["windows"]["1m"], row["windows"]["5m"]
    cells = [
        f'<td class="name" title="{escape(row["id"])}">{escape(row["name"])}</td>',
        f"<td>{escape(row['group'])}</td>",
        f"<td>{escape(row['provider'])}</td>",
        f'<td><span class="state {escape(row["state"])}">{escape(state_text(row))}</span></td>',
        f'<td class="n">{row["in_flight"]}</td>',
        f'<td class="n">{_num(one["rate"], 2)} · {_num(five["rate"], 2)}</td>',
        f'<td class="n">{_pct(one["error_rate"])} · {_pct(five["error_rate"])}</td>',
        f'<td class="n">{_num(one["latency_p50_ms"], 0)} / {_num(one["latency_p95_ms"], 0)}</td>',
        f'<td class="n">{_num(one["ttft_p50_ms"], 0)} / {_num(one["ttft_p95_ms"], 0)}</td>',
        f'<td class="n">{_pct(one["share"])}</td>',
        f"<td>{escape(_last_error(row))}</td>",
        f"<td>{escape(_ago(row['last_success_seconds_ago']))}</td>",
        f'<td class="n">{row["totals"]["tokens"]}</td>',
        f'<td class="n">{row["totals"]["cost"]:.4f}</td>',
    ]
    return f'<tr data-id="{escape(row["id"])}">{"".join(cells)}</tr>'


def _failover(failover: Mapping[str, Any]) -> str:
    steps = []
    for step in failover["attempts"]:
        outcome = "served" if step["error"] is None else step["error"]
        if step["status"] is not None and step["error"] is not None:
            outcome += f" {step['status']}"
        steps.append(
            f'<span class="step {"ok" if step["error"] is None else "bad"}">'
            f"{escape(step['deployment'])} <small>{escape(step['reason'])}</small> → "
            f"{escape(outcome)}</span>"
        )
    return (
        f"<li><code>{escape(failover['request_id'])}</code> {escape(failover['model'])} "
        f"({_num(failover['latency_ms'], 0)} ms): {' '.join(steps)}</li>"
    )


def _tile(label: str, value: str, key: str) -> str:
    return f'<div class="tile"><span>{escape(label)}</span><b data-tile="{key}">{value}</b></div>'


def page(snapshot: Mapping[str, Any], assets: Mapping[str, str], *, signed_in: bool) -> str:
    """The status page for `snapshot`; `assets` maps a static file's name to its URL;
    `signed_in`: through the login cookie (then the page offers to log out)."""
    logout = (
        '<form method="post" action="/status/logout" class="logout"><button>log out</button></form>'
        if signed_in
        else ""
    )
    minute = snapshot["gateway"]["1m"]
    totals = snapshot["totals"]
    scope = snapshot["scope"]
    tiles = "".join(
        [
            _tile("requests/s (1m)", _num(minute["rate"], 2), "rate"),
            _tile("failed answers (1m)", _pct(minute["error_rate"]), "error_rate"),
            _tile("p95 latency (1m)", _num(minute["latency_p95_ms"], 0, " ms"), "p95"),
            _tile("fallbacks (1m)", _pct(minute["fallback_rate"]), "fallback_rate"),
            _tile("hedges (1m)", _pct(minute["hedge_rate"]), "hedge_rate"),
            _tile("stream failovers (1m)", _pct(minute["stream_failover_rate"]), "failover_rate"),
            _tile("tokens (total)", str(totals["tokens"]), "tokens"),
            _tile("cost (total)", f"{totals['cost']:.4f}", "cost"),
        ]
    )
    rows = "".join(_deployment_row(row) for row in snapshot["deployments"])
    groups = "".join(
        f"<li><b>{escape(group['name'])}</b>: "
        + ", ".join(f"{escape(d['name'])} {_pct(d['share']['1m'])}" for d in group["deployments"])
        + "</li>"
        for group in snapshot["groups"]
    )
    failovers = "".join(_failover(f) for f in snapshot["failovers"]) or "<li>none yet</li>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>turnout status</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{escape(assets["uPlot.min.css"])}">
<link rel="stylesheet" href="{escape(assets["status.css"])}">
<script src="{escape(assets["uPlot.iife.min.js"])}" defer></script>
<script src="{escape(assets["status.js"])}" defer></script>
</head><body>
<header><h1>turnout status</h1>
<p id="scope">Traffic: {escape(scope["traffic"])} ({scope["workers"]} worker(s) merged);
health: {escape(scope["health"])}. Windows: last minute and last five minutes.</p>
<p>Status: <b id="gateway-status">{escape(snapshot["status"])}</b> ·
<span id="live" class="live off">not live yet</span> ·
<span id="updated">served at {snapshot["at"]:.0f}</span></p>
{logout}
</header>
<section class="tiles">{tiles}</section>
<section class="charts"><div><h2>Answers and failures per 10 s</h2><div id="chart-requests"></div>
</div><div><h2>p95 latency (ms)</h2><div id="chart-latency"></div></div></section>
<section><h2>Deployments</h2>
<table id="deployments"><thead><tr><th>deployment</th><th>group</th><th>provider</th>
<th>state</th><th>in flight</th><th>req/s 1m · 5m</th><th>errors 1m · 5m</th>
<th>latency p50 / p95 ms (1m)</th><th>TTFT p50 / p95 ms (1m)</th><th>group share (1m)</th>
<th>last error</th><th>last success</th><th>tokens</th><th>cost</th></tr></thead>
<tbody>{rows}</tbody></table></section>
<section><h2>Traffic share per group</h2><ul id="groups">{groups}</ul></section>
<section><h2>Recent failovers</h2><ul id="failovers">{failovers}</ul></section>
</body></html>
"""


def login_page(assets: Mapping[str, str], error: str | None = None) -> str:
    """The form asking for the master key (posted to ``/status/login``, never put in a URL)."""
    message = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>turnout status: sign in</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{escape(assets["status.css"])}">
</head><body class="login">
<h1>turnout status</h1>
{message}
<form method="post" action="/status/login">
<label for="key">Master key</label>
<input id="key" name="key" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Sign in</button>
</form>
</body></html>
"""
