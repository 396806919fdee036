// Wallboard: renders the snapshots of /wallboard/feed (server-sent events). Hand-written, no library.
"use strict";

(() => {
  const LOWER_IS_WORSE = {
    service_level: true, service_level_answered: true, missed_closure_rate: true, agents_available: true,
    calls_waiting: false, longest_wait_s: false, abandon_rate: false, missed_rate: false, asa_s: false,
    promise_kept_rate: true, callbacks_overdue: false, voicemails_untranscribed: false,
  };
  const $ = (id) => document.getElementById(id);
  let latest = null;
  let scope = "";
  let thresholdsShown = "";

  const pct = (v) => (v === null || v === undefined ? "–" : `${Math.round(v * 1000) / 10}%`);
  const secs = (v) => {
    if (v === null || v === undefined) return "–";
    const s = Math.round(v);
    return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}`;
  };
  const num = (v) => (v === null || v === undefined ? "–" : String(v));
  const money = (v) => (v === null || v === undefined ? "–" : v.toLocaleString(undefined, { maximumFractionDigits: 0 }));
  const FORMAT = {
    calls_waiting: num, longest_wait_s: secs, service_level: pct, abandon_rate: pct,
    missed_closure_rate: pct, agents_available: num, asa_s: secs, calls_offered: num, revenue_at_risk: money,
    callbacks_pending: num, callbacks_overdue: num, promise_kept_rate: pct, voicemails_untranscribed: num, sms_sent: num,
    wait_estimate_p80_coverage: pct,
  };
  const time = (iso) => new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

  function level(metric, value, thresholds) {
    const t = thresholds[metric];
    if (!t || value === null || value === undefined) return "ok";
    if (LOWER_IS_WORSE[metric]) return value <= t.alert ? "alert" : value <= t.warn ? "warn" : "ok";
    return value >= t.alert ? "alert" : value >= t.warn ? "warn" : "ok";
  }

  function row(cells) {
    const tr = document.createElement("tr");
    for (const text of cells) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.appendChild(td);
    }
    return tr;
  }

  function renderTiles(figures, thresholds) {
    for (const tile of document.querySelectorAll(".tile")) {
      const metric = tile.dataset.metric;
      const value = figures[metric];
      tile.querySelector("output").textContent = FORMAT[metric](value);
      tile.dataset.value = value === null || value === undefined ? "" : String(value);
      tile.dataset.level = level(metric, value, thresholds);
    }
    $("tile-revenue_at_risk").hidden = figures.revenue_at_risk === null || figures.revenue_at_risk === undefined;
    $("sl-answered").textContent = `answered only: ${pct(figures.service_level_answered)}`;
    $("short-abandons").textContent = `short abandons apart: ${num(figures.calls_short_abandoned)}`;
    $("missed-count").textContent = `${num(figures.missed_closed)} of ${num(figures.missed_closable)} missed`;
    $("agents-detail").textContent =
      `ringing ${figures.agents_ringing} · busy ${figures.agents_busy} · wrap-up ${figures.agents_wrap_up} · paused ${figures.agents_paused}`;
    $("aht").textContent = `handle time ${secs(figures.aht_s)}`;
    $("answered").textContent = `${num(figures.calls_answered)} answered · ${num(figures.calls_missed)} missed`;
    $("callbacks-due").textContent =
      `due 15 min ${num(figures.callbacks_due_15m)} · 60 min ${num(figures.callbacks_due_60m)} · agents free ${num(figures.agents_available)}`;
    $("promises").textContent = `${num(figures.promises_kept)} of ${num(figures.promises_counted)} kept`;
    $("voicemails-callback").textContent = `${num(figures.voicemails_awaiting_callback)} awaiting a callback`;
    $("sms-detail").textContent = `delivered ${num(latest.overall.sms_delivered)} · opted out ${num(latest.overall.sms_opted_out)}`;
    $("tile-sms_sent").querySelector("output").textContent = num(latest.overall.sms_sent);
    $("wait-accuracy").textContent =
      `${num(figures.wait_estimates_scored)} scored · RMSE ${secs(figures.wait_estimate_rmse_s)} · bias ${figures.wait_estimate_bias_s === null || figures.wait_estimate_bias_s === undefined ? "–" : `${Math.round(figures.wait_estimate_bias_s)}s`}`;
  }

  function renderLists(snap) {
    const inScope = (item) => !scope || item.queue === scope;
    const waiting = $("waiting").tBodies[0];
    waiting.replaceChildren(...snap.waiting.filter(inScope).map((w) => row([w.caller || "withheld", w.queue, secs(w.wait_s)])));
    const missed = $("missed").tBodies[0];
    missed.replaceChildren(
      ...snap.open_missed.filter(inScope).reverse().map((m) => row([m.caller, m.queue || "–", m.outcome.replace(/_/g, " "), time(m.ended_at)])),
    );
    // Promises about to be broken (or broken) with nobody dialled: shown only while there are some.
    const atRisk = snap.at_risk.filter(inScope);
    $("at-risk-panel").hidden = atRisk.length === 0;
    $("at-risk-count").textContent = String(atRisk.length);
    $("at-risk").tBodies[0].replaceChildren(
      ...atRisk.map((r) => {
        const tr = row([r.number, r.queue, `${time(r.window_end)}${r.ends_in_s < 0 ? ` (${secs(-r.ends_in_s)} ago)` : ""}`,
          r.expected_by ? time(r.expected_by) : "no estimate"]);
        tr.dataset.callback = r.callback_id;
        tr.dataset.level = r.ends_in_s < 0 ? "alert" : "warn";
        return tr;
      }),
    );
    const queues = $("queues").tBodies[0];
    queues.replaceChildren(
      ...Object.entries(snap.queues).map(([name, f]) =>
        row([name, num(f.calls_waiting), secs(f.longest_wait_s), pct(f.service_level), pct(f.abandon_rate), num(f.agents_available)])),
    );
  }

  function renderScope(snap) {
    const select = $("scope");
    const names = Object.keys(snap.queues);
    const known = Array.from(select.options).map((o) => o.value).slice(1);
    if (names.join() !== known.join()) {
      select.replaceChildren(new Option("All queues", ""), ...names.map((n) => new Option(n, n)));
      select.value = names.includes(scope) ? scope : "";
    }
  }

  // -- charts: drawn on canvas by hand -------------------------------------------------------------

  function canvasOf(id) {
    const canvas = $(id);
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || 600;
    const height = canvas.clientHeight || 180;
    if (canvas.width !== width * ratio) { canvas.width = width * ratio; canvas.height = height * ratio; }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    return { ctx, width, height };
  }

  function axes(ctx, width, height, max, label) {
    ctx.strokeStyle = "#4a5568";
    ctx.fillStyle = "#94a3b8";
    ctx.font = "11px system-ui";
    ctx.beginPath(); ctx.moveTo(30, 4); ctx.lineTo(30, height - 18); ctx.lineTo(width - 4, height - 18); ctx.stroke();
    ctx.fillText(label(max), 2, 12);
    ctx.fillText(label(0), 2, height - 20);
  }

  function bars(id, points, series, colours, max, label) {
    const { ctx, width, height } = canvasOf(id);
    max = Math.max(max, 1);
    axes(ctx, width, height, max, label);
    if (!points.length) return;
    const step = (width - 36) / points.length;
    points.forEach((p, i) => {
      series.forEach((key, k) => {
        const h = ((height - 24) * p[key]) / max;
        ctx.fillStyle = colours[k];
        ctx.fillRect(32 + i * step + (k * step) / series.length, height - 18 - h, Math.max(1, step / series.length - 1), h);
      });
      if (i % Math.ceil(points.length / 8) === 0) { ctx.fillStyle = "#94a3b8"; ctx.fillText(time(p.start), 32 + i * step, height - 4); }
    });
  }

  function line(id, points, key, colour) {
    const { ctx, width, height } = canvasOf(id);
    axes(ctx, width, height, 1, (v) => `${v * 100}%`);
    const step = (width - 36) / Math.max(points.length, 1);
    ctx.strokeStyle = colour; ctx.lineWidth = 2; ctx.beginPath();
    let started = false;
    points.forEach((p, i) => {
      if (p[key] === null) return;
      const x = 32 + i * step + step / 2;
      const y = height - 18 - (height - 24) * p[key];
      if (started) ctx.lineTo(x, y); else { ctx.moveTo(x, y); started = true; }
      ctx.fillStyle = colour; ctx.fillRect(x - 2, y - 2, 4, 4);
    });
    ctx.stroke(); ctx.lineWidth = 1;
  }

  function renderCharts(day) {
    const most = (key) => day.reduce((m, p) => Math.max(m, p[key]), 0);
    bars("chart-calls", day, ["answered", "offered"], ["#1f9d55", "#4a5568"], most("offered"), String);
    line("chart-sl", day, "service_level", "#63b3ed");
    bars("chart-abandons", day, ["abandoned"], ["#e53e3e"], most("abandoned"), String);
    bars("chart-waiting", day, ["peak_waiting"], ["#d69e2e"], most("peak_waiting"), String);
  }

  // -- thresholds ----------------------------------------------------------------------------------

  function renderThresholdForm(thresholds) {
    const shown = JSON.stringify(thresholds);
    const form = $("thresholds");
    if (shown === thresholdsShown || form.contains(document.activeElement)) return;
    thresholdsShown = shown;
    const fields = Object.keys(LOWER_IS_WORSE).map((metric) => {
      const t = thresholds[metric] || { warn: "", alert: "" };
      const set = document.createElement("fieldset");
      const legend = document.createElement("legend");
      legend.textContent = `${metric.replace(/_/g, " ")} (${LOWER_IS_WORSE[metric] ? "lower" : "higher"} is worse)`;
      set.appendChild(legend);
      for (const key of ["warn", "alert"]) {
        const label = document.createElement("label");
        label.textContent = `${key} `;
        const input = document.createElement("input");
        input.type = "number"; input.step = "any"; input.min = "0"; input.name = `${metric}.${key}`; input.value = t[key];
        label.appendChild(input);
        set.appendChild(label);
      }
      return set;
    });
    const save = document.createElement("button");
    save.type = "submit"; save.textContent = "Save thresholds";
    form.replaceChildren(...fields, save);
  }

  async function saveThresholds(event) {
    event.preventDefault();
    const body = {};
    for (const input of $("thresholds").querySelectorAll("input")) {
      const [metric, key] = input.name.split(".");
      if (input.value === "") continue;
      (body[metric] = body[metric] || {})[key] = Number(input.value);
    }
    for (const metric of Object.keys(body)) if (Object.keys(body[metric]).length !== 2) delete body[metric];
    const response = await fetch("/api/v1/wallboard/thresholds", {
      method: "PUT",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Requested-With": "callcenter" },
      body: JSON.stringify(body),
    });
    const answer = await response.json();
    $("thresholds-message").textContent = response.ok ? "Saved." : answer.message;
    if (response.ok) thresholdsShown = "";
  }

  // -- the feed ------------------------------------------------------------------------------------

  function render(snap) {
    latest = snap;
    $("at").textContent = new Date(snap.at).toLocaleTimeString();
    $("at").dateTime = snap.at;
    renderScope(snap);
    const figures = scope && snap.queues[scope] ? snap.queues[scope] : snap.overall;
    renderTiles(figures, snap.thresholds || {});
    renderLists(snap);
    renderCharts(snap.day);
    renderThresholdForm(snap.thresholds || {});
  }

  function connect() {
    const source = new EventSource("/wallboard/feed");
    const status = $("status");
    source.onopen = () => { status.textContent = "live"; status.dataset.state = "live"; };
    source.onmessage = (event) => render(JSON.parse(event.data));
    source.onerror = () => {
      status.textContent = "reconnecting…"; status.dataset.state = "lost";
      if (source.readyState === EventSource.CLOSED) { setTimeout(connect, 2000); }
    };
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("scope").addEventListener("change", (e) => { scope = e.target.value; if (latest) render(latest); });
    $("thresholds").addEventListener("submit", saveThresholds);
    window.addEventListener("resize", () => latest && renderCharts(latest.day));
    connect();
  });
})();
