// The agent's worklist page: live list from /agent/feed, actions through the JSON API (same cookie).
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const ALERT_KEY = "callcenter.agent.alert";
  const REASONS = {
    missed_call: "Missed call", kept_place: "Kept their place", chosen_time: "Chose a time",
    voicemail: "Voicemail", sms_reply: "SMS reply", sms_text: "Text to read", follow_up: "Follow-up",
  };
  const STATES = {
    requested: "waiting for their turn", scheduled: "due", retry_wait: "waiting to retry",
    dialing: "dialling now", connected: "on the call",
  };
  const WAITING = new Set(["requested", "scheduled", "retry_wait"]);
  let me = null;            // {role, own_agent, agent, queues}
  let offsetMs = 0;         // server clock minus this browser's
  let first = true;         // no alert for what was already due when the page opened
  const dueSeen = new Set();
  const nodes = new Map();  // callback id -> <li>
  let items = [];
  let audio = null;

  // -- the sound alert ---------------------------------------------------------------------------
  function alertOn() { return localStorage.getItem(ALERT_KEY) !== "off"; }
  function showAlertToggle() {
    const on = alertOn();
    const button = $("alert-toggle");
    button.setAttribute("aria-pressed", on ? "true" : "false");
    button.textContent = on ? "Sound alert: on" : "Sound alert: off";
  }
  function beep() {
    // Two short tones made here (WebAudio): no sound file is fetched.
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      if (audio.state === "suspended") { audio.resume(); }
      const start = audio.currentTime;
      [0, 0.25].forEach((delay, i) => {
        const osc = audio.createOscillator();
        const gain = audio.createGain();
        osc.type = "sine";
        osc.frequency.value = i ? 1046 : 880;
        gain.gain.setValueAtTime(0.0001, start + delay);
        gain.gain.exponentialRampToValueAtTime(0.3, start + delay + 0.02);
        gain.gain.exponentialRampToValueAtTime(0.0001, start + delay + 0.2);
        osc.connect(gain).connect(audio.destination);
        osc.start(start + delay);
        osc.stop(start + delay + 0.22);
      });
      document.body.dataset.beeps = String(Number(document.body.dataset.beeps || "0") + 1);
    } catch (err) {
      console.warn("sound alert failed", err);
    }
  }
  $("alert-toggle").addEventListener("click", () => {
    localStorage.setItem(ALERT_KEY, alertOn() ? "off" : "on");
    showAlertToggle();
    if (alertOn() && audio && audio.state === "suspended") { audio.resume(); }
  });

  // -- formatting ----------------------------------------------------------------------------------
  const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
  const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
  function when(iso) {
    if (!iso) { return "–"; }
    const at = new Date(iso);
    const today = new Date(Date.now() + offsetMs).toDateString() === at.toDateString();
    return today ? timeFmt.format(at) : dayFmt.format(at);
  }
  function span(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) { return `${s} s`; }
    const m = Math.round(s / 60);
    if (m < 60) { return `${m} min`; }
    const h = Math.floor(m / 60);
    return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
  }
  function now() { return Date.now() + offsetMs; }
  function timing(item) {
    const start = Date.parse(item.callback.promise.start);
    const end = Date.parse(item.callback.promise.end);
    const t = now();
    if (t < start) { return { status: "early", text: `opens in ${span((start - t) / 1000)}` }; }
    if (t < end) { return { status: "on_time", text: `${span((end - t) / 1000)} left` }; }
    return { status: "late", text: `${span((t - end) / 1000)} late` };
  }
  function text(el, value) { if (el.textContent !== value) { el.textContent = value; } }
  function list(ol, rows, none) {
    const lis = rows.map((row) => {
      const li = document.createElement("li");
      if (typeof row === "string") { li.textContent = row; } else { li.textContent = row.text; li.className = row.className; }
      return li;
    });
    if (!lis.length && none) {
      const li = document.createElement("li");
      li.className = "none";
      li.textContent = none;
      lis.push(li);
    }
    const next = lis.map((li) => `${li.className}|${li.textContent}`).join("\n");
    if (ol.dataset.rendered !== next) { ol.replaceChildren(...lis); ol.dataset.rendered = next; }
  }

  // -- the API -------------------------------------------------------------------------------------
  function agentQuery() {
    return me && me.role !== "agent" && me.agent ? `?agent=${encodeURIComponent(me.agent)}` : "";
  }
  async function act(item, path, body) {
    const li = nodes.get(item.callback.id);
    const error = li.querySelector(".item-error");
    error.hidden = true;
    const buttons = li.querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const response = await fetch(`/api/v1/callbacks/${encodeURIComponent(item.callback.id)}/${path}${agentQuery()}`, {
        method: body === "DELETE" ? "DELETE" : "POST",
        headers: { "X-Requested-With": "callcenter", "Content-Type": "application/json", "Accept": "application/json" },
        body: body && body !== "DELETE" ? JSON.stringify(body) : undefined,
        credentials: "same-origin",
      });
      if (!response.ok) {
        let message = `${response.status} ${response.statusText}`;
        try { const problem = await response.json(); message = problem.message || message; } catch (_) { /* not JSON */ }
        error.textContent = message;
        error.hidden = false;
        return false;
      }
      return true;
    } catch (err) {
      error.textContent = `Not sent: ${err}`;
      error.hidden = false;
      return false;
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
      update(li, itemOf(item.callback.id) || item);
    }
  }
  function itemOf(id) { return items.find((i) => i.callback.id === id); }

  // -- rendering -----------------------------------------------------------------------------------
  function node(item) {
    let li = nodes.get(item.callback.id);
    if (li) { return li; }
    li = $("item-template").content.firstElementChild.cloneNode(true);
    li.dataset.id = item.callback.id;
    const id = item.callback.id;
    li.querySelector(".claim-btn").addEventListener("click", () => act(itemOf(id), "claim"));
    li.querySelector(".release-btn").addEventListener("click", () => act(itemOf(id), "claim", "DELETE"));
    li.querySelector(".start-btn").addEventListener("click", () => act(itemOf(id), "start"));
    const form = li.querySelector("form.dispose");
    const whenLabel = form.querySelector(".when");
    const sync = () => {
      const followUp = form.elements.outcome.value === "follow_up";
      whenLabel.hidden = !followUp;
      form.elements.follow_up_at.required = followUp;
    };
    form.addEventListener("change", sync);
    sync();
    const close = li.querySelector("form.close");
    close.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = { outcome: close.elements.outcome.value, notes: close.elements.notes.value };
      if (await act(itemOf(id), "disposition", body)) { close.reset(); }
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const outcome = form.elements.outcome.value;
      const body = { outcome, notes: form.elements.notes.value };
      if (outcome === "follow_up") {
        const local = form.elements.follow_up_at.value;
        if (local) { body.follow_up_at = new Date(local).toISOString(); }
      }
      if (await act(itemOf(id), "disposition", body)) { form.reset(); sync(); }
    });
    nodes.set(id, li);
    return li;
  }

  function update(li, item) {
    const cb = item.callback;
    const mine = me && me.agent;
    text(li.querySelector(".number"), cb.number);
    text(li.querySelector(".reason-tag"), REASONS[item.reason_kind] || item.reason_kind);
    li.dataset.state = cb.state;
    li.dataset.due = item.due ? "true" : "false";
    const state = STATES[cb.state] || cb.state;
    text(li.querySelector(".state"), `${cb.queue} · ${state}${item.due && WAITING.has(cb.state) ? "" : cb.due_at && WAITING.has(cb.state) ? ` at ${when(cb.due_at)}` : ""}`);
    const why = [item.reason];
    item.sources.forEach((s) => { if (s.note && !why.some((w) => w.includes(s.note))) { why.push(s.note); } });
    text(li.querySelector(".why"), why.filter(Boolean).join(" — ") || "–");
    text(li.querySelector(".promise"), `${when(cb.promise.start)} – ${when(cb.promise.end)}`);
    const t = timing(item);
    const timingEl = li.querySelector(".timing");
    timingEl.dataset.status = t.status;
    text(timingEl, t.text);
    const claim = item.claim;
    const claimEl = li.querySelector(".claim");
    if (claim) {
      const left = (Date.parse(claim.until) - now()) / 1000;
      const by = claim.agent_id === mine ? (me.role === "agent" ? "you" : claim.agent_id) : claim.agent_id;
      text(claimEl, `claimed by ${by}, ${left > 0 ? `${span(left)} left` : "expired"}`);
      claimEl.dataset.holder = claim.agent_id;
    } else {
      text(claimEl, item.owner ? `${item.owner}'s follow-up` : "not claimed");
      delete claimEl.dataset.holder;
    }
    list(li.querySelector(".attempts ol"), item.attempts.map((a) =>
      `${when(a.started_at)}${a.agent_id ? ` by ${a.agent_id}` : ""}: ${(a.result || "in progress").replace("_", " ")}${a.cause ? ` (${a.cause})` : ""}`), "none yet");
    list(li.querySelector(".history ol"), item.history.map((c) =>
      `${when(c.arrived_at)} ${c.queue || ""}: ${(c.outcome || "in progress").replace(/_/g, " ")}${c.wait_s != null ? `, waited ${span(c.wait_s)}` : ""}${c.agent_id ? `, with ${c.agent_id}` : ""}`), "no earlier calls");
    const vm = li.querySelector(".voicemails");
    vm.hidden = item.voicemails.length === 0;
    const vmKey = JSON.stringify(item.voicemails);
    if (vm.dataset.rendered !== vmKey) {
      vm.dataset.rendered = vmKey;
      vm.querySelector("div").replaceChildren(...item.voicemails.flatMap((v) => {
        const meta = document.createElement("p");
        meta.className = "meta";
        meta.textContent = `Left ${when(v.recorded_at)}, ${Math.round(v.duration_s)} s${v.urgency !== "normal" ? `, ${v.urgency}` : ""}`;
        const quote = document.createElement("blockquote");
        quote.textContent = v.transcript || (v.silent ? "(no speech in the message)" : `(${v.status}: not transcribed yet)`);
        return [meta, quote];
      }));
    }
    const texts = li.querySelector(".texts");
    texts.hidden = item.texts.length === 0;
    list(texts.querySelector("ol"), item.texts.map((m) => ({
      text: `${when(m.at)} ${m.direction === "in" ? "them" : "us"}: ${m.text}${m.direction === "out" && m.status !== "delivered" ? ` (${m.status})` : ""}`,
      className: m.direction,
    })));
    const heldByOther = claim && claim.agent_id !== mine;
    const claimButton = li.querySelector(".claim-btn");
    claimButton.hidden = !WAITING.has(cb.state);
    text(claimButton, claim && !heldByOther ? `Keep ${Math.round(me.claim_s / 60)} more minutes` : "Claim");
    li.querySelector(".release-btn").hidden = !(claim && !heldByOther);
    li.querySelector(".start-btn").hidden = !(item.due && (cb.state === "scheduled" || cb.state === "retry_wait"));
    const last = item.attempts[item.attempts.length - 1];
    li.querySelector("form.dispose").hidden = !(cb.state === "connected" && last && last.agent_id === mine);
    // A waiting item I hold can be closed without a call (a text answered by text, nothing to do).
    li.querySelector("form.close").hidden = !(WAITING.has(cb.state) && claim && !heldByOther);
  }

  function render(message) {
    offsetMs = Date.parse(message.now) - Date.now();
    items = message.items;
    const ol = $("list");
    const keep = new Set(items.map((i) => i.callback.id));
    for (const [id, li] of nodes) {
      if (!keep.has(id)) { li.remove(); nodes.delete(id); dueSeen.delete(id); }
    }
    let fresh = 0;
    items.forEach((item, index) => {
      const li = node(item);
      update(li, item);
      if (ol.children[index] !== li) { ol.insertBefore(li, ol.children[index] || null); }
      const dueNow = item.due && WAITING.has(item.callback.state);
      if (dueNow && !dueSeen.has(item.callback.id)) {
        dueSeen.add(item.callback.id);
        if (!first) { fresh += 1; }
      }
    });
    if (fresh && alertOn()) { beep(); }
    first = false;
    const due = items.filter((i) => i.due && WAITING.has(i.callback.state)).length;
    const late = items.filter((i) => i.overdue).length;
    text($("summary"), `${items.length} open · ${due} due now · ${late} late`);
    document.title = `${due ? `(${due}) ` : ""}Callbacks: ${me.agent}`;
    $("empty").hidden = items.length > 0;
    document.body.dataset.items = String(items.length);
  }

  // -- the feed ------------------------------------------------------------------------------------
  function connect() {
    const source = new EventSource(`/agent/feed${agentQuery() || (me.agent ? `?agent=${encodeURIComponent(me.agent)}` : "")}`);
    const status = $("status");
    source.onopen = () => { status.textContent = "live"; status.dataset.state = "live"; };
    source.onmessage = (event) => {
      $("problem").hidden = true;
      render(JSON.parse(event.data));
    };
    source.addEventListener("problem", (event) => {
      const problem = JSON.parse(event.data);
      $("problem").textContent = problem.message;
      $("problem").hidden = false;
    });
    source.onerror = () => {
      status.textContent = "reconnecting…"; status.dataset.state = "lost";
      if (source.readyState === EventSource.CLOSED) { setTimeout(reconnect, 2000); }
    };
  }

  async function reconnect() {
    // A feed closed for good is often a session that ended (signed out elsewhere, token revoked).
    try {
      const response = await fetch(`/agent/me${agentQuery()}`, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (response.redirected && new URL(response.url).pathname === "/signin") {
        location.href = `/signin?next=${encodeURIComponent(location.pathname + location.search)}`;
        return;
      }
    } catch (_) { /* the server is away: keep trying */ }
    connect();
  }

  async function start() {
    showAlertToggle();
    const query = params.get("agent") ? `?agent=${encodeURIComponent(params.get("agent"))}` : "";
    const response = await fetch(`/agent/me${query}`, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!response.ok) {
      let message = `${response.status} ${response.statusText}`;
      try { message = (await response.json()).message || message; } catch (_) { /* not JSON */ }
      $("problem").textContent = message;
      $("problem").hidden = false;
      $("status").textContent = "not connected"; $("status").dataset.state = "lost";
      if (response.status === 401) { location.href = `/signin?next=${encodeURIComponent(location.pathname + location.search)}`; }
      return;
    }
    me = await response.json();
    if (me.role !== "agent") {
      const pick = $("pick");
      pick.hidden = false;
      $("pick-agent").value = me.agent || "";
    }
    if (!me.agent) {
      $("status").textContent = "pick an agent"; $("status").dataset.state = "lost";
      $("pick-agent").focus();
      return;
    }
    text($("who"), me.role === "agent" ? `for ${me.agent}` : `of ${me.agent} (viewed by a supervisor)`);
    document.title = `Callbacks: ${me.agent}`;
    connect();
    setInterval(() => { items.forEach((item) => { const li = nodes.get(item.callback.id); if (li) { update(li, item); } }); }, 1000);
  }
  start();
})();
