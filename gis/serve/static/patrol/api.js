/* The patrol app's link to the server: the bearer token, JSON and image
   requests, and the phone's copy of what it fetched.

   Every successful GET of an alert, its chips or the list is also put into
   Cache Storage ("patrol-data"), so the app shows the team's alerts and their
   chips with no network; the service worker (sw.js) keeps the app shell. A
   request that fails for want of a network answers from that copy, marked
   fromCache with the time it was saved. Logging out deletes the copy. */
"use strict";
(function () {
  const DATA_CACHE = "patrol-data-v1";
  const TOKEN_KEY = "gis-patrol-token";
  const TIMEOUT_MS = 15000;

  class AuthError extends Error {}
  class OfflineError extends Error {}
  class HttpError extends Error {
    constructor(status, message, body) { super(message); this.status = status; this.body = body; }
  }

  function token() { return localStorage.getItem(TOKEN_KEY) || ""; }
  function setToken(t) { if (t) localStorage.setItem(TOKEN_KEY, t); else localStorage.removeItem(TOKEN_KEY); }
  function absolute(path) { return new URL(path, location.origin).href; }

  /* The message of an error answer: the server's {"error": code, "message", "hint"},
     or FastAPI's own {"detail": ...}. */
  function messageOf(body, fallback) {
    if (!body) return fallback;
    if (typeof body === "string") return body;
    const e = body.message ? body : (body.detail || body.error || body);
    if (typeof e === "string") return e;
    if (Array.isArray(e)) return e.map((x) => (x && (x.msg || x.message)) || String(x)).join("; ");
    const parts = [e.message || e.msg || fallback];
    if (e.hint) parts.push(e.hint);
    return parts.join(" — ");
  }

  async function readBody(res) {
    const type = res.headers.get("content-type") || "";
    try { return type.includes("json") ? await res.json() : await res.text(); } catch (_) { return null; }
  }

  /* fetch with the token and a timeout; a network failure throws OfflineError. */
  async function request(path, opts) {
    const o = Object.assign({ credentials: "same-origin" }, opts || {});
    o.headers = Object.assign({}, o.headers || {});
    if (token()) o.headers.Authorization = "Bearer " + token();
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), o.timeout || TIMEOUT_MS);
    o.signal = ctl.signal;
    try {
      return await fetch(path, o);
    } catch (err) {
      throw new OfflineError(String(err && err.message || err));
    } finally {
      clearTimeout(timer);
    }
  }

  async function remember(path, res) {
    if (!("caches" in window)) return;
    const blob = await res.clone().blob();
    const headers = { "content-type": res.headers.get("content-type") || "", "x-patrol-saved": String(Date.now()) };
    const cache = await caches.open(DATA_CACHE);
    await cache.put(absolute(path), new Response(blob, { headers }));
  }

  async function recall(path) {
    if (!("caches" in window)) return null;
    const cache = await caches.open(DATA_CACHE);
    return cache.match(absolute(path));
  }

  /* GET path; answers {res, fromCache, savedAt}. Throws AuthError on 401,
     HttpError on another refusal, OfflineError when neither server nor copy answers. */
  async function get(path) {
    let res;
    try {
      res = await request(path);
    } catch (err) {
      const copy = await recall(path);
      if (!copy) throw err;
      return { res: copy, fromCache: true, savedAt: Number(copy.headers.get("x-patrol-saved")) || 0 };
    }
    if (res.status === 401) throw new AuthError("401");
    if (!res.ok) {
      const body = await readBody(res);
      throw new HttpError(res.status, messageOf(body, res.statusText), body);
    }
    const saved = Number(res.headers.get("x-patrol-saved"));
    if (saved) return { res, fromCache: true, savedAt: saved };  // the service worker answered from the copy
    await remember(path, res);
    return { res, fromCache: false, savedAt: Date.now() };
  }

  async function getJSON(path) {
    const r = await get(path);
    return { data: await r.res.json(), fromCache: r.fromCache, savedAt: r.savedAt };
  }

  /* An object URL for an image (chips, photos), or null when there is none. */
  async function getImageURL(path) {
    try {
      const r = await get(path);
      return URL.createObjectURL(await r.res.blob());
    } catch (err) {
      if (err instanceof AuthError) throw err;
      return null;
    }
  }

  /* Fetch (and so keep) several paths, a few at a time; failures are ignored.
     onlyMissing: skip paths already kept (chips do not change between epochs). */
  async function prefetch(paths, { width = 3, onlyMissing = false } = {}) {
    const todo = paths.slice();
    async function worker() {
      while (todo.length) {
        const p = todo.shift();
        try {
          if (onlyMissing && await recall(p)) continue;
          await get(p);
        } catch (_) { /* offline or gone: the copy stays as it was */ }
      }
    }
    await Promise.all(Array.from({ length: width }, worker));
  }

  async function postForm(path, form) {
    return request(path, { method: "POST", body: form, timeout: 120000 });
  }

  async function login(username, password) {
    const res = await request("/api/login", {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ username, password }),
    });
    const body = await readBody(res);
    if (!res.ok) throw new HttpError(res.status, messageOf(body, res.statusText), body);
    setToken(body.token);
    return body;
  }

  async function forget() {
    setToken("");
    if ("caches" in window) await caches.delete(DATA_CACHE);
  }

  window.PatrolAPI = {
    AuthError, OfflineError, HttpError, token, setToken, get, getJSON, getImageURL, prefetch,
    postForm, login, forget, readBody, messageOf, DATA_CACHE,
  };
})();
