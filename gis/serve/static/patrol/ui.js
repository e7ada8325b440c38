/* Shared pieces of the patrol app's pages: the lifecycle, the words (from
   texts.js, in the chosen language), h() to build elements, and what the
   list needs to know of an alert (priority, days waiting, distance).

   h() never parses HTML: attributes go through setAttribute and children
   in as text nodes, so text from the server or the patrol cannot become
   markup. */
"use strict";
(function () {
  const TEXTS = window.PatrolTexts;
  const NEXT = {
    new: ["dispatched", "false_alarm"], dispatched: ["illegal", "legal", "false_alarm"],
    illegal: ["demolished"], legal: ["closed"], false_alarm: ["closed"], demolished: ["closed"], closed: [],
  };
  const STATUSES = Object.keys(NEXT);
  const REASONS = ["seasonal_crops", "temporary_shed", "image_artefact", "existing_structure", "permit_exists"];
  const state = {
    lang: localStorage.getItem("gis-patrol-lang") || "zh", me: null, alerts: [], fromCache: false, savedAt: 0,
    position: null, filters: { project: "", status: "open" }, queue: [],
  };
  const view = () => document.getElementById("view");
  /* Replace the page's content (null and false children are left out, not printed). */
  const show = (...nodes) => view().replaceChildren(...nodes.flat().filter((x) => x !== null && x !== undefined && x !== false));

  // --- helpers ---------------------------------------------------------------

  function t(key, vars) {
    let s = (TEXTS[state.lang] || TEXTS.zh)[key];
    if (s === undefined) s = TEXTS.zh[key] || key;
    for (const [k, v] of Object.entries(vars || {})) s = s.split(`{${k}}`).join(String(v));
    return s;
  }
  const label = (table, code) => ((TEXTS[table][state.lang] || {})[code]) || code || "";

  /* An element; attrs: class, on<event> handlers, other attributes; children: nodes or text. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "class") el.className = v;
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat(3)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  const fmtDate = (s) => (s ? String(s).slice(0, 10) : "—");
  const fmtTime = (ms) => new Date(ms).toLocaleString(state.lang === "zh" ? "zh-CN" : "en-GB");
  const statusChip = (s) => h("span", { class: `chip st-${s}` }, label("status", s));

  /* Days without a verdict, as the server counts them (the bulletin's rule); null once the alert has one. */
  function daysWaiting(a) {
    if (typeof a.days_waiting === "number" || a.days_waiting === null) return a.days_waiting;
    const since = Date.parse(a.status_since || a.first_seen || "");
    return Number.isNaN(since) ? 0 : Math.max(0, Math.floor((Date.now() - since) / 86400000));
  }
  function priority(a) { return (a.post_freeze ? 2 : 0) + (a.growing ? 1 : 0); }

  /* [lon, lat] of the alert: the server's centroid, else the middle of its geometry. */
  function lonlat(a) {
    const c = a.centroid;
    if (Array.isArray(c)) return c;
    if (c && typeof c === "object") return [Number(c.lon ?? c.x), Number(c.lat ?? c.y)];
    if (a.lon !== undefined && a.lat !== undefined) return [Number(a.lon), Number(a.lat)];
    const pts = [];
    (function walk(x) { if (typeof x[0] === "number") pts.push(x); else x.forEach(walk); })((a.geometry || {}).coordinates || []);
    if (!pts.length) return null;
    const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
    return [(Math.min(...xs) + Math.max(...xs)) / 2, (Math.min(...ys) + Math.max(...ys)) / 2];
  }
  function distanceM(a) {
    const ll = lonlat(a);
    if (!ll || !state.position) return null;
    const R = 6371008.8, rad = Math.PI / 180;
    const dLat = (ll[1] - state.position.lat) * rad, dLon = (ll[0] - state.position.lon) * rad;
    const s = Math.sin(dLat / 2) ** 2 + Math.cos(state.position.lat * rad) * Math.cos(ll[1] * rad) * Math.sin(dLon / 2) ** 2;
    return 2 * R * Math.asin(Math.sqrt(s));
  }
  const fmtDistance = (m) => (m >= 1000 ? t("km", { n: (m / 1000).toFixed(1) }) : t("m", { n: Math.round(m) }));


  window.PatrolUI = {
    TEXTS, NEXT, STATUSES, REASONS, state, view, show, t, label, h, fmtDate, fmtTime, statusChip,
    daysWaiting, priority, lonlat, distanceM, fmtDistance,
  };
})();
