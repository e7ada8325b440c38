/* The patrol app's pages: login, the team's alert list, one alert (chips,
   small map, facts, history, the record form) and the upload queue.

   Plain DOM, no framework and no build step. Every text from the server or
   the patrol goes in with textContent (ui.js: h() never parses HTML). Pages
   are chosen by the URL hash: #/ (list), #/alert/ID, #/queue, #/login. */
"use strict";
(function () {
  const API = window.PatrolAPI;
  const Q = window.PatrolQueue;
  const {
    TEXTS, STATUSES, NEXT, REASONS, state, view, show, t, label, h, fmtDate, fmtTime, statusChip,
    daysWaiting, priority, lonlat, distanceM, fmtDistance,
  } = window.PatrolUI;

  function position(fresh) {
    if (!("geolocation" in navigator)) return Promise.resolve(state.position);
    return new Promise((resolve) => {
      navigator.geolocation.getCurrentPosition(
        (p) => { state.position = { lat: p.coords.latitude, lon: p.coords.longitude, accuracy: p.coords.accuracy }; resolve(state.position); },
        () => resolve(state.position), { enableHighAccuracy: true, timeout: fresh ? 8000 : 3000, maximumAge: fresh ? 10000 : 60000 });
    });
  }

  // --- frame: header, network, queue badge -------------------------------------

  async function refreshFrame() {
    document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
    document.title = t("app_title");
    document.getElementById("app-title").textContent = t("app_title");
    document.getElementById("lang").textContent = t("lang_switch");
    document.getElementById("logout").textContent = t("logout");
    const net = document.getElementById("net");
    net.textContent = navigator.onLine ? t("online") : t("offline");
    net.className = navigator.onLine ? "net on" : "net off";
    state.queue = await Q.snapshot();
    const pending = await Q.pendingCount();
    const badge = document.getElementById("queue-count");
    badge.textContent = String(pending);
    badge.hidden = pending === 0;
    document.getElementById("queue-link").setAttribute("aria-label", `${t("queue_title")} ${pending}`);
    document.getElementById("user").textContent = state.me ? state.me.username : "";
    const showFrame = !!API.token();
    for (const id of ["queue-link", "logout"]) document.getElementById(id).hidden = !showFrame;
  }

  function banner(text) {
    const b = document.getElementById("banner");
    if (!window.isSecureContext) text = [t("insecure"), text].filter(Boolean).join(" ");
    b.textContent = text || "";
    b.hidden = !text;
  }

  // --- login --------------------------------------------------------------------

  function renderLogin(message) {
    const flash = sessionStorage.getItem("gis-patrol-login-msg");
    sessionStorage.removeItem("gis-patrol-login-msg");
    const msg = h("p", { class: "error", role: "alert", id: "login-error" }, message || flash || "");
    const user = h("input", { id: "username", name: "username", autocomplete: "username", required: true });
    const pass = h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true });
    const form = h("form", { class: "card login", id: "login-form", onsubmit: async (ev) => {
      ev.preventDefault();
      msg.textContent = "";
      try {
        await API.login(user.value.trim(), pass.value);
        localStorage.setItem("gis-patrol-user", user.value.trim());
        location.hash = "#/";
        await start();
      } catch (err) {
        if (err instanceof API.OfflineError) msg.textContent = t("login_offline");
        else if (err.status === 429) msg.textContent = t("login_throttled");
        else msg.textContent = t("login_failed");
      }
    } },
    h("h1", null, t("login_title")),
    h("label", { for: "username" }, t("username")), user,
    h("label", { for: "password" }, t("password")), pass,
    h("button", { type: "submit", class: "primary", id: "login-submit" }, t("login")), msg);
    show(form);
  }

  // --- the list -------------------------------------------------------------------

  async function loadAlerts({ keep = true } = {}) {
    const r = await API.getJSON("/api/alerts");
    state.alerts = Array.isArray(r.data) ? r.data : (r.data.alerts || r.data.items || []);
    state.fromCache = r.fromCache;
    state.savedAt = r.savedAt;
    if (keep && !r.fromCache) {  // keep the open alerts, with their chips, for the field
      const open = state.alerts.filter((a) => a.status !== "closed");
      const paths = [];
      for (const a of open) {
        const id = encodeURIComponent(a.alert_id);
        paths.push(`/api/alerts/${id}`, `/api/alerts/${id}/chips/before`, `/api/alerts/${id}/chips/after`);
      }
      const details = paths.filter((p) => !p.includes("/chips/"));
      API.prefetch(details)
        .then(() => API.prefetch(paths.filter((p) => p.includes("/chips/")), { onlyMissing: true }))
        .then(() => { window.patrolCached = true; });
    }
  }

  function pendingFor(alertId) {
    return state.queue.filter((v) => v.alert_id === alertId && ["queued", "sending", "conflict"].includes(v.state));
  }

  /* Everything recorded on this phone for the alert (newest first), with its upload state. */
  function recordedHere(alertId) {
    const items = state.queue.filter((v) => v.alert_id === alertId && v.state !== "dropped");
    if (!items.length) return h("section", { id: "recorded-here", hidden: true });
    return h("section", { class: "card pending-here", id: "recorded-here" }, h("h2", null, t("pending_here")), items.map(queueCard));
  }

  function renderList() {
    const projects = [...new Set(state.alerts.map((a) => a.project_id || ""))].sort();
    const f = state.filters;
    const rows = state.alerts
      .filter((a) => (f.status === "open" ? a.status !== "closed" : f.status === "all" || a.status === f.status))
      .filter((a) => f.project === "" || (a.project_id || "-") === f.project)
      .sort((a, b) => priority(b) - priority(a) || (daysWaiting(b) ?? -1) - (daysWaiting(a) ?? -1)
        || String(a.alert_id).localeCompare(String(b.alert_id)));
    const projectSel = h("select", { id: "filter-project", "aria-label": t("project"), onchange: (e) => { f.project = e.target.value; renderList(); } },
      h("option", { value: "" }, t("all_projects")),
      projects.map((p) => h("option", { value: p || "-", selected: f.project === (p || "-") }, p || t("no_project"))));
    const statusSel = h("select", { id: "filter-status", "aria-label": t("status"), onchange: (e) => { f.status = e.target.value; renderList(); } },
      h("option", { value: "open", selected: f.status === "open" }, t("open_statuses")),
      h("option", { value: "all", selected: f.status === "all" }, t("all_statuses")),
      STATUSES.map((s) => h("option", { value: s, selected: f.status === s }, label("status", s))));
    const items = rows.map((a) => {
      const d = distanceM(a);
      const pend = pendingFor(a.alert_id);
      return h("a", { class: `card alert-item p${priority(a)}`, href: `#/alert/${encodeURIComponent(a.alert_id)}`, "data-alert-id": a.alert_id },
        h("div", { class: "row" }, h("strong", { class: "aid" }, a.alert_id), statusChip(a.status),
          pend.length ? h("span", { class: "chip pending" }, t("pending_badge")) : null),
        h("div", { class: "row meta" }, label("kind", a.kind), ` · ${Number(a.area_mu || 0).toFixed(2)} ${state.lang === "zh" ? "亩" : "mu"} · `,
          a.project_id || t("no_project")),
        h("div", { class: "row tags" },
          a.post_freeze ? h("span", { class: "tag red" }, t("post_freeze")) : null,
          a.growing ? h("span", { class: "tag orange" }, t("growing")) : null,
          daysWaiting(a) === null ? null : h("span", { class: "tag" }, t("days_waiting", { n: daysWaiting(a) })),
          d === null ? null : h("span", { class: "tag dist" }, t("distance", { d: fmtDistance(d) }))));
    });
    show(
      h("div", { class: "filters" }, projectSel, statusSel),
      h("h1", { class: "page-title" }, `${t("list_title")} (${rows.length})`),
      h("div", { id: "alert-list" }, items.length ? items : h("p", { class: "empty" }, t("no_alerts"))));
    banner(state.fromCache ? t("offline_data", { when: fmtTime(state.savedAt) }) : "");
  }

  // --- one alert --------------------------------------------------------------------

  async function renderAlert(id) {
    let a = state.alerts.find((x) => x.alert_id === id) || null;
    let fromCache = false;
    try {
      const r = await API.getJSON(`/api/alerts/${encodeURIComponent(id)}`);
      a = r.data.alert && r.data.alert.alert_id ? Object.assign({}, r.data, r.data.alert) : r.data;
      fromCache = r.fromCache;
    } catch (err) {
      if (err instanceof API.AuthError) throw err;
      if (!a) { show(h("p", { class: "error" }, err.message)); return; }
    }
    banner(fromCache ? t("offline_data", { when: fmtTime(state.savedAt) }) : "");
    const ll = lonlat(a);
    const chips = h("div", { class: "chips" }, ["before", "after"].map((which) => {
      const img = h("img", { alt: `${t(which)} ${a.alert_id}`, class: `chip-img chip-${which}` });
      const date = a[`${which}_date`] || a[`chip_${which}_date`] || (which === "after" ? a.last_seen : a.previous_epoch) || "";
      API.getImageURL(`/api/alerts/${encodeURIComponent(a.alert_id)}/chips/${which}`).then((url) => {
        if (url) img.src = url; else img.replaceWith(h("div", { class: "chip-missing" }, t("chip_missing")));
      });
      return h("figure", null, img, h("figcaption", null, `${t(which)} ${date ? fmtDate(date) : ""}`));
    }));
    const map = h("div", { id: "minimap", class: "minimap" });
    const facts = h("dl", { class: "facts" }, [
      ["area_mu", Number(a.area_mu || 0).toFixed(2)], ["kind", label("kind", a.kind)],
      ["project", a.project_id || t("no_project")], ["parcel", a.parcel_id || "—"], ["district", a.district || "—"],
      ["freeze_date", fmtDate(a.freeze_date)], ["first_seen", fmtDate(a.first_seen)], ["last_seen", fmtDate(a.last_seen)],
    ].map(([k, v]) => [h("dt", null, t(k)), h("dd", { "data-field": k }, v)]));
    const nav = ll ? h("a", { class: "button nav", id: "navigate", href: `geo:${ll[1].toFixed(6)},${ll[0].toFixed(6)}?q=${ll[1].toFixed(6)},${ll[0].toFixed(6)}` }, t("navigate")) : null;
    const events = a.history || a.events || [];
    const history = h("section", { class: "card" }, h("h2", null, t("history")),
      events.length ? h("ol", { class: "history" }, events.map((e) => h("li", null,
        h("span", { class: "when" }, t("by_at", { by: e.by || "", at: String(e.at || "").replace("T", " ").slice(0, 16) })), " ",
        historyText(e)))) : h("p", { class: "empty" }, t("no_history")));
    const pending = pendingFor(a.alert_id);
    show(
      h("div", { class: "row head" }, h("a", { href: "#/", class: "back" }, `‹ ${t("back")}`),
        h("h1", { class: "aid" }, a.alert_id), statusChip(a.status)),
      h("div", { class: "row tags" }, a.post_freeze ? h("span", { class: "tag red" }, t("post_freeze")) : null,
        a.growing ? h("span", { class: "tag orange" }, t("growing")) : null,
        daysWaiting(a) === null ? null : h("span", { class: "tag" }, t("days_waiting", { n: daysWaiting(a) })), h("span", { class: "tag" }, t("rev", { n: a.rev }))),
      chips, map,
      h("div", { class: "legend" }, h("span", { class: "sw sw-alert" }), t("legend_alert"),
        h("span", { class: "sw sw-parcel" }), t("legend_parcel"), h("span", { class: "sw sw-redline" }), t("legend_redline")),
      facts, nav,
      recordedHere(a.alert_id),
      recordForm(a, pending), history);
    drawMap(map, a);
  }

  /* One audit event in words: "状态: 已派发 → 违法", "照片: site_1.jpg". */
  function historyText(e) {
    const f = e.field || "";
    if (!f) return e.action || "";
    const name = (TEXTS[state.lang] || TEXTS.zh)[`field_${f}`] || f;
    if (f === "photos") return `${name}: ${e.old || String(e.new || "").split("/").pop()}`;
    const word = (v) => (f === "status" || f === "verdict" ? label("status", v) : f === "reason" ? label("reason", v) : v || "");
    return e.old ? `${name}: ${word(e.old)} → ${word(e.new)}` : `${name}: ${word(e.new)}`;
  }

  function drawMap(el, a) {
    if (!window.L) return;
    const m = L.map(el, { attributionControl: false, zoomControl: true, scrollWheelZoom: false });
    const layers = [];
    const add = (geom, style) => { if (geom && geom.type) { const l = L.geoJSON(geom, { style, interactive: false }).addTo(m); layers.push(l); } };
    add(a.redline || a.redline_geometry, { color: "#d7191c", weight: 2, dashArray: "6 4", fill: false });
    add(a.parcel || a.parcel_geometry, { color: "#2b83ba", weight: 2, fillOpacity: 0.05 });
    add(a.geometry, { color: "#f46d43", weight: 2, fillColor: "#fdae61", fillOpacity: 0.6 });
    L.control.scale({ imperial: false }).addTo(m);
    const focus = layers.slice(1).map((l) => l.getBounds()).filter((b) => b.isValid());
    let bounds = focus.length ? focus.reduce((x, y) => x.extend(y)) : (layers[0] && layers[0].getBounds());
    if (bounds && bounds.isValid()) m.fitBounds(bounds.pad(0.3), { maxZoom: 19 });
    else m.setView([0, 0], 2);
    window.patrolMap = m;
  }

  function recordForm(a, pending) {
    const base = pending.length ? pending[pending.length - 1].status : a.status;
    const next = NEXT[base] || [];
    if (!next.length) return h("section", { class: "card" }, h("p", { class: "empty" }, t("closed_no_next")));
    const photos = [];
    const msg = h("p", { class: "msg", role: "status", id: "record-msg" });
    const statusSel = h("select", { id: "record-status", name: "status", onchange: () => { reasonBox.hidden = statusSel.value !== "false_alarm"; } },
      h("option", { value: "" }, t("choose")), next.map((s) => h("option", { value: s }, label("status", s))));
    const reasonSel = h("select", { id: "record-reason", name: "reason" }, h("option", { value: "" }, t("choose")),
      REASONS.map((r) => h("option", { value: r }, label("reason", r))));
    const reasonBox = h("div", { hidden: true }, h("label", { for: "record-reason" }, t("reason")), reasonSel);
    const note = h("textarea", { id: "record-note", name: "note", rows: 3, maxlength: 2000 });
    const list = h("ul", { class: "photo-list", id: "photo-list" });
    const input = h("input", { type: "file", id: "record-photos", accept: "image/*", capture: "environment", multiple: true,
      onchange: async () => {
        const files = [...input.files];
        input.value = "";
        const pos = await position(true);
        for (const file of files) {
          const p = await Q.preparePhoto(file, pos);
          photos.push(p);
          list.append(h("li", { "data-photo": p.photo_client_id },
            h("img", { src: URL.createObjectURL(file), alt: p.name }),
            h("span", null, p.name, h("br"), p.lat === null ? t("photo_no_position")
              : t("photo_position", { lat: p.lat.toFixed(5), lon: p.lon.toFixed(5) }))));
        }
      } });
    const form = h("form", { class: "card record", id: "record-form", "data-alert-id": a.alert_id, onsubmit: async (ev) => {
      ev.preventDefault();
      if (!statusSel.value) { msg.textContent = t("need_status"); return; }
      if (statusSel.value === "false_alarm" && !reasonSel.value) { msg.textContent = t("need_reason"); return; }
      const pos = await position(false);
      const basis = pending.length ? pending[pending.length - 1] : null;
      await Q.record({ alert: Object.assign({}, a, basis ? { status: basis.status } : {}), status: statusSel.value,
        reason: statusSel.value === "false_alarm" ? reasonSel.value : "", note: note.value, position: pos,
        photos: photos.splice(0), user: state.me ? state.me.username : "", basedOn: basis ? basis.client_id : "" });
      sessionStorage.setItem("gis-patrol-flash", t("saved_queued"));
      await renderAlert(a.alert_id);
    } },
    h("h2", null, t("record")),
    h("label", { for: "record-status" }, t("new_status")), statusSel, reasonBox,
    h("label", { for: "record-note" }, t("note")), note,
    h("label", { for: "record-photos", class: "button photo-button" }, t("add_photos")), input, list,
    h("button", { type: "submit", class: "primary", id: "record-submit" }, t("submit")), msg);
    const flash = sessionStorage.getItem("gis-patrol-flash");
    if (flash) { msg.textContent = flash; sessionStorage.removeItem("gis-patrol-flash"); }
    return form;
  }

  // --- the queue ----------------------------------------------------------------------

  function queueCard(v) {
    const photos = (v.photoItems || []).map((p) => h("li", { class: `photo-state ps-${p.state}`, "data-photo": p.photo_client_id, "data-state": p.state },
      h("span", { class: "chip" }, t(`state_${p.state}`)), " ", p.name, " ",
      p.state === "confirmed" ? h("small", null, t("photo_confirmed", { hash: p.sha256.slice(0, 12) })) : h("small", null, `${(p.size / 1024).toFixed(0)} KB`),
      p.on_site === false ? h("div", { class: "error" }, t("not_on_site", { d: Math.round(p.distance_m || 0) })) : null,
      p.error ? h("div", { class: "error" }, p.error) : null,
      p.state === "refused" ? h("button", { type: "button", onclick: () => Q.discard("photo", p.photo_client_id) }, t("remove")) : null));
    const card = h("div", { class: `qitem qs-${v.state}`, "data-client-id": v.client_id, "data-state": v.state },
      h("div", { class: "row" }, h("a", { href: `#/alert/${encodeURIComponent(v.alert_id)}`, class: "aid" }, v.alert_id),
        `${label("status", v.old_status)} → ${label("status", v.status)}`, h("span", { class: "chip" }, t(`state_${v.state}`))),
      v.reason ? h("div", { class: "meta" }, label("reason", v.reason)) : null,
      v.note ? h("div", { class: "meta note" }, v.note) : null,
      h("div", { class: "meta" }, fmtTime(Date.parse(v.recorded_at))),
      v.error ? h("div", { class: "error" }, v.error) : null,
      v.state === "conflict" ? conflictBox(v) : null,
      v.state === "refused" ? h("button", { type: "button", onclick: () => Q.discard("verdict", v.client_id) }, t("remove")) : null,
      photos.length ? h("ul", { class: "photo-states" }, photos) : null);
    return card;
  }

  function conflictBox(v) {
    const s = v.server || {};
    const side = (title, status, note, extra) => h("div", { class: "side" }, h("strong", null, title),
      h("div", null, label("status", status)), note ? h("div", { class: "note" }, note) : null, extra ? h("small", null, extra) : null);
    return h("div", { class: "conflict", role: "alert" }, h("strong", null, t("conflict_title")),
      h("div", { class: "sides" },
        side(t("conflict_server"), s.status, s.note, `${s.updated_by || ""} ${String(s.updated_at || "").slice(0, 16)} · ${t("rev", { n: s.rev })}`),
        side(t("conflict_phone"), v.status, v.note, t("rev", { n: v.rev }))),
      h("button", { type: "button", class: "primary keep-mine", onclick: () => Q.resolve(v.client_id, "mine") }, t("keep_mine")),
      h("button", { type: "button", class: "take-theirs", onclick: () => Q.resolve(v.client_id, "theirs") }, t("take_theirs")));
  }

  function renderQueue() {
    banner("");
    const waiting = state.queue.filter((v) => !["sent", "dropped"].includes(v.state) || (v.photoItems || []).some((p) => p.state !== "confirmed"));
    const done = state.queue.filter((v) => !waiting.includes(v));
    show(
      h("div", { class: "row head" }, h("a", { href: "#/", class: "back" }, `‹ ${t("back")}`), h("h1", null, t("queue_title"))),
      h("button", { type: "button", class: "primary", id: "sync-now", onclick: () => Q.sync() }, t("send_now")),
      h("div", { id: "queue-list" }, waiting.length ? waiting.map(queueCard) : h("p", { class: "empty" }, t("queue_empty"))),
      done.length ? h("section", { id: "queue-done" }, h("h2", null, t("sent_recently")), done.map(queueCard)) : null);
  }

  // --- routing and start ------------------------------------------------------------------

  async function route() {
    await refreshFrame();
    const hash = location.hash || "#/";
    if (!API.token() || hash === "#/login") { renderLogin(); window.patrolReady = true; return; }
    try {
      if (hash.startsWith("#/alert/")) await renderAlert(decodeURIComponent(hash.slice(8)));
      else if (hash === "#/queue") renderQueue();
      else renderList();
    } catch (err) {
      if (err instanceof API.AuthError) { await API.forget(); renderLogin(t("login_failed")); }
      else show(h("p", { class: "error" }, String(err.message || err)));
    }
    window.patrolReady = true;
  }

  async function start() {
    try {
      if (!state.me || navigator.onLine) {
        const r = await API.getJSON("/api/me");
        state.me = r.data;
        if (!localStorage.getItem("gis-patrol-lang") && r.data.lang) state.lang = r.data.lang.startsWith("en") ? "en" : "zh";
      }
      await loadAlerts();
    } catch (err) {
      if (err instanceof API.AuthError) { await API.forget(); }
      else show(h("p", { class: "error" }, String(err.message || err)));
    }
    await route();
    Q.sync();
  }

  /* A form the patrol has started is never redrawn under their fingers. */
  function formUntouched() {
    const f = document.getElementById("record-form");
    return !f || (!f.elements.status.value && !f.elements.note.value && !document.querySelector("#photo-list li"));
  }

  async function queueChanged(info) {
    if (Q.authFailed() && API.token()) {  // token revoked or user disabled: log in again, the queue waits
      await API.forget();
      state.me = null;
      sessionStorage.setItem("gis-patrol-login-msg", t("login_again"));
      if (location.hash !== "#/login") location.hash = "#/login"; else await route();
      return;
    }
    await refreshFrame();
    const hash = location.hash || "#/";
    const sent = info.sent || [];
    if (sent.length) {
      try { await loadAlerts({ keep: false }); } catch (_) { /* offline again: keep what is shown */ }
    }
    if (hash === "#/queue") renderQueue();
    else if (hash === "#/" && sent.length) renderList();
    else if (hash.startsWith("#/alert/")) {
      const id = decodeURIComponent(hash.slice(8));
      if (sent.includes(id) && formUntouched()) await renderAlert(id);
      else { const old = document.getElementById("recorded-here"); if (old) old.replaceWith(recordedHere(id)); }
    }
    document.dispatchEvent(new CustomEvent("patrol-queue"));
  }
  // one redraw after the other, so an older snapshot never paints over a newer one
  let redraws = Promise.resolve();
  Q.onChange((info) => { redraws = redraws.then(() => queueChanged(info)).catch(() => {}); });
  window.addEventListener("hashchange", route);
  window.addEventListener("online", () => { refreshFrame(); if (API.token()) loadAlerts().then(() => { if ((location.hash || "#/") === "#/") renderList(); }).catch(() => {}); });
  window.addEventListener("offline", refreshFrame);
  document.getElementById("lang").addEventListener("click", () => {
    state.lang = state.lang === "zh" ? "en" : "zh";
    localStorage.setItem("gis-patrol-lang", state.lang);
    route();
  });
  document.getElementById("logout").addEventListener("click", async () => {
    await API.forget();
    localStorage.removeItem("gis-patrol-user");
    state.me = null; state.alerts = [];
    location.hash = "#/login";
    route();
  });
  if (!window.isSecureContext) banner(t("insecure"));
  if ("serviceWorker" in navigator && window.isSecureContext) {
    navigator.serviceWorker.register("sw.js", { scope: "./" }).then(() => navigator.serviceWorker.ready)
      .then(() => { window.patrolShellCached = true; }).catch(() => {});
  }
  if ("geolocation" in navigator) {
    navigator.geolocation.watchPosition((p) => {
      const first = !state.position;
      state.position = { lat: p.coords.latitude, lon: p.coords.longitude, accuracy: p.coords.accuracy };
      if (first && (location.hash || "#/") === "#/" && API.token()) renderList();
    }, () => {}, { enableHighAccuracy: true, maximumAge: 30000 });
  }
  window.patrol = { state, route, start };
  if (API.token()) start(); else route();
})();
