// turnout's status page: keeps the server-rendered page live from /status/events and draws
// its charts with uPlot (vendored beside this file). Text is only ever set as text, never as
// markup, so nothing from configuration or traffic can inject into the page.
"use strict";
(function () {
  const STATES = {
    healthy: "healthy", degraded: "degraded", breaker_open: "breaker open",
    cooling_down: "cooling down", probing: "probing",
  };
  const $ = (id) => document.getElementById(id);
  const num = (v, d) => (v === null || v === undefined ? "–" : v.toFixed(d));
  const pct = (v) => (v === null || v === undefined ? "–" : (v * 100).toFixed(1) + "%");
  const ago = (s) => {
    if (s === null || s === undefined) return "never";
    if (s < 120) return s.toFixed(0) + "s ago";
    if (s < 7200) return (s / 60).toFixed(0) + "m ago";
    return (s / 3600).toFixed(1) + "h ago";
  };
  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    if (cls) node.className = cls;
    return node;
  }
  function stateText(row) {
    let text = STATES[row.state] || row.state;
    if (row.state === "cooling_down" || row.state === "breaker_open") {
      text += " · " + row.cooldown_seconds_left.toFixed(0) + "s left";
    }
    if (["cooling_down", "breaker_open", "probing"].includes(row.state) && row.cooldown_reason) {
      text += " (" + row.cooldown_reason + ")";
    }
    return text;
  }
  function lastError(row) {
    const e = row.last_error;
    if (!e) return "–";
    return e.kind + (e.status !== null ? " " + e.status : "") + " · " + ago(e.seconds_ago);
  }
  function renderRows(rows) {
    const body = $("deployments").tBodies[0];
    const fresh = document.createElement("tbody");
    for (const row of rows) {
      const one = row.windows["1m"], five = row.windows["5m"];
      const tr = el("tr");
      tr.dataset.id = row.id;
      const name = el("td", row.name, "name");
      name.title = row.id;
      tr.append(name, el("td", row.group), el("td", row.provider));
      const state = el("td");
      state.append(el("span", stateText(row), "state " + row.state));
      tr.append(state);
      for (const [text, cls] of [
        [String(row.in_flight), "n"],
        [num(one.rate, 2) + " · " + num(five.rate, 2), "n"],
        [pct(one.error_rate) + " · " + pct(five.error_rate), "n"],
        [num(one.latency_p50_ms, 0) + " / " + num(one.latency_p95_ms, 0), "n"],
        [num(one.ttft_p50_ms, 0) + " / " + num(one.ttft_p95_ms, 0), "n"],
        [pct(one.share), "n"],
        [lastError(row), ""],
        [ago(row.last_success_seconds_ago), ""],
        [String(row.totals.tokens), "n"],
        [row.totals.cost.toFixed(4), "n"],
      ]) tr.append(el("td", text, cls));
      fresh.append(tr);
    }
    body.replaceWith(fresh);
  }
  function renderLists(snap) {
    const groups = $("groups");
    groups.replaceChildren(...snap.groups.map((g) => {
      const li = el("li");
      li.append(el("b", g.name), document.createTextNode(": " + g.deployments
        .map((d) => d.name + " " + pct(d.share["1m"])).join(", ")));
      return li;
    }));
    const list = $("failovers");
    if (!snap.failovers.length) { list.replaceChildren(el("li", "none yet")); return; }
    list.replaceChildren(...snap.failovers.map((f) => {
      const li = el("li");
      li.append(el("code", f.request_id),
        document.createTextNode(" " + f.model + " (" + num(f.latency_ms, 0) + " ms): "));
      for (const step of f.attempts) {
        const outcome = step.error === null ? "served"
          : step.error + (step.status !== null ? " " + step.status : "");
        const span = el("span", step.deployment + " ", "step " + (step.error === null ? "ok" : "bad"));
        span.append(el("small", step.reason), document.createTextNode(" → " + outcome));
        li.append(span, document.createTextNode(" "));
      }
      return li;
    }));
  }
  function renderTiles(snap) {
    const m = snap.gateway["1m"];
    const values = {
      rate: num(m.rate, 2), error_rate: pct(m.error_rate),
      p95: m.latency_p95_ms === null ? "–" : num(m.latency_p95_ms, 0) + " ms",
      fallback_rate: pct(m.fallback_rate), hedge_rate: pct(m.hedge_rate),
      failover_rate: pct(m.stream_failover_rate), tokens: String(snap.totals.tokens),
      cost: snap.totals.cost.toFixed(4),
    };
    for (const node of document.querySelectorAll("[data-tile]")) {
      node.textContent = values[node.dataset.tile];
    }
  }
  const charts = {};
  const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be123c", "#4d7c0f"];
  function chart(id, series, data) {
    if (typeof uPlot === "undefined") return;
    const box = $(id);
    const width = Math.max(280, box.clientWidth || 480);
    const old = charts[id];
    if (old && old.series.length === series.length + 1) { old.setData(data); return; }
    if (old) old.destroy();
    charts[id] = new uPlot({ width: width, height: 180, series: [{}].concat(series),
      axes: [{}, { size: 50 }], legend: { live: false } }, data, box);
  }
  function renderCharts(snap) {
    const s = snap.series;
    chart("chart-requests", [
      { label: "answers", stroke: PALETTE[0] },
      { label: "failed answers", stroke: PALETTE[1] },
      { label: "failed attempts", stroke: PALETTE[4], dash: [4, 4] },
    ], [s.t, s.requests, s.errors, s.attempt_errors]);
    const names = Object.keys(s.deployments_p95_ms).slice(0, PALETTE.length - 1);
    chart("chart-latency", [{ label: "gateway", stroke: "#111827", width: 2 }].concat(
      names.map((n, i) => ({ label: n, stroke: PALETTE[i % PALETTE.length] }))),
      [s.t, s.p95_ms].concat(names.map((n) => s.deployments_p95_ms[n])));
  }
  function render(snap) {
    $("gateway-status").textContent = snap.status;
    $("updated").textContent = "updated " + new Date(snap.at * 1000).toLocaleTimeString();
    renderTiles(snap);
    renderRows(snap.deployments);
    renderLists(snap);
    renderCharts(snap);
  }
  function live(on, text) {
    const node = $("live");
    node.textContent = text;
    node.className = "live " + (on ? "on" : "off");
  }
  function connect() {
    const source = new EventSource("/status/events");
    source.addEventListener("snapshot", (event) => {
      live(true, "live");
      render(JSON.parse(event.data));
    });
    source.addEventListener("closing", () => live(false, "gateway stopping; reconnecting"));
    source.onerror = () => live(false, "disconnected; reconnecting");
  }
  document.addEventListener("DOMContentLoaded", () => {
    fetch("/status/snapshot", { credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : null)).then((snap) => { if (snap) renderCharts(snap); })
      .catch(() => {});
    connect();
  });
})();
