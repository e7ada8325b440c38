/* What the patrol recorded on the phone, kept in IndexedDB until the server
   has it, and the loop that sends it.

   Two object stores: "verdicts" (one per recorded status change, key
   client_id, a UUID made here) and "photos" (one per photo, key
   photo_client_id, with the image itself, its SHA-256 computed here, and the
   phone's position and time when it was added). Everything is queued first
   and sent by sync(), which runs after each record, when the browser says the
   network is back ("online"), at start, and on a backing-off timer while
   anything waits. A re-send carries the same ids, so the server answers what
   it stored before and never makes a second record.

   States: verdict queued -> sending -> sent | conflict (409: the alert changed
   on the server; the patrol keeps theirs or re-sends with the new rev) |
   refused (400/403/404: shown with the server's message). Photo queued ->
   sending -> confirmed, only when the server answers the same SHA-256; the
   image is then deleted from the phone. */
"use strict";
(function () {
  const DB_NAME = "gis-patrol";
  const KEEP_SENT_MS = 7 * 24 * 3600 * 1000;
  let dbPromise = null;
  const listeners = [];

  function openDb() {
    if (!dbPromise) {
      dbPromise = new Promise((resolve, reject) => {
        const r = indexedDB.open(DB_NAME, 1);
        r.onupgradeneeded = () => {
          const db = r.result;
          db.createObjectStore("verdicts", { keyPath: "client_id" });
          db.createObjectStore("photos", { keyPath: "photo_client_id" });
        };
        r.onsuccess = () => resolve(r.result);
        r.onerror = () => reject(r.error);
      });
    }
    return dbPromise;
  }

  async function run(store, mode, fn) {
    const db = await openDb();
    return new Promise((resolve, reject) => {
      const t = db.transaction(store, mode);
      const req = fn(t.objectStore(store));
      t.oncomplete = () => resolve(req ? req.result : undefined);
      t.onerror = () => reject(t.error);
      t.onabort = () => reject(t.error);
    });
  }
  const all = (store) => run(store, "readonly", (s) => s.getAll());
  const getOne = (store, key) => run(store, "readonly", (s) => s.get(key));
  const put = (store, value) => run(store, "readwrite", (s) => s.put(value));
  const del = (store, key) => run(store, "readwrite", (s) => s.delete(key));

  function uuid() {
    if (crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  async function sha256(blob) {
    const digest = await crypto.subtle.digest("SHA-256", await blob.arrayBuffer());
    return Array.from(new Uint8Array(digest), (x) => x.toString(16).padStart(2, "0")).join("");
  }

  /* Tell the pages; info.sent lists the alerts whose verdicts the server just took. */
  function changed(info) { listeners.forEach((fn) => { try { fn(info || {}); } catch (_) { /* a view's problem */ } }); }

  /* A photo as the patrol added it: hashed now, with where and when. */
  async function preparePhoto(file, position) {
    return {
      photo_client_id: uuid(), blob: file, name: file.name || "photo.jpg", type: file.type || "image/jpeg",
      size: file.size, sha256: await sha256(file), taken_at: new Date().toISOString(),
      lat: position ? position.lat : null, lon: position ? position.lon : null,
      accuracy: position ? position.accuracy : null,
    };
  }

  /* Queue one verdict and its photos, then try to send. */
  async function record({ alert, status, reason, note, position, photos, user, basedOn }) {
    const v = {
      client_id: uuid(), alert_id: alert.alert_id, status, reason: reason || "", note: note || "",
      rev: alert.rev, old_status: alert.status, lat: position ? position.lat : null,
      lon: position ? position.lon : null, recorded_at: new Date().toISOString(), user: user || "",
      state: "queued", photos: photos.map((p) => p.photo_client_id), tries: 0, based_on: basedOn || "",
    };
    for (const p of photos) {
      await put("photos", Object.assign({}, p, { alert_id: alert.alert_id, verdict_client_id: v.client_id,
                                                  state: "queued", tries: 0 }));
    }
    await put("verdicts", v);
    changed();
    sync();
    return v;
  }

  function fields(obj) {
    const f = new FormData();
    for (const [k, val] of Object.entries(obj)) if (val !== null && val !== undefined && val !== "") f.append(k, String(val));
    return f;
  }

  /* The alert in a 409 answer, whatever envelope the server puts it in. */
  function alertIn(body) {
    if (!body || typeof body !== "object") return null;
    for (const k of ["alert", "current"]) if (body[k] && body[k].alert_id) return body[k];
    if (body.detail && typeof body.detail === "object") return alertIn(body.detail);
    if (body.error && typeof body.error === "object") return alertIn(body.error);
    return body.alert_id ? body : null;
  }

  /* One answer to one item: "ok" | "conflict" | "refused" | "retry" | "auth". */
  function outcome(res) {
    if (res.ok) return "ok";
    if (res.status === 409) return "conflict";
    if (res.status === 401) return "auth";
    if (res.status === 408 || res.status === 429 || res.status >= 500) return "retry";
    return "refused";
  }

  async function sendVerdict(v) {
    v.state = "sending"; v.tries += 1; await put("verdicts", v); changed();
    const res = await PatrolAPI.postForm(`/api/alerts/${encodeURIComponent(v.alert_id)}/verdict`, fields({
      status: v.status, reason: v.reason, note: v.note, rev: v.rev, lat: v.lat, lon: v.lon,
      client_id: v.client_id, recorded_at: v.recorded_at,
    }));
    const body = await PatrolAPI.readBody(res);
    const o = outcome(res);
    if (o === "ok") {
      Object.assign(v, { state: "sent", server: alertIn(body) || body, sent_at: Date.now(), error: "" });
      // a record made on the phone on top of this one now builds on the server's new revision
      const rev = (v.server || {}).rev;
      for (const w of await all("verdicts")) {
        if (w.based_on === v.client_id && w.state === "queued" && rev !== undefined) await put("verdicts", Object.assign(w, { rev }));
      }
    }
    else if (o === "conflict") Object.assign(v, { state: "conflict", server: alertIn(body) });
    else if (o === "refused") Object.assign(v, { state: "refused", error: PatrolAPI.messageOf(body, String(res.status)) });
    else v.state = "queued";
    await put("verdicts", v);
    return o;
  }

  async function sendPhoto(p) {
    p.state = "sending"; p.tries += 1; await put("photos", p); changed();
    const f = fields({ sha256: p.sha256, photo_client_id: p.photo_client_id, client_id: p.verdict_client_id,
                       taken_at: p.taken_at, lat: p.lat, lon: p.lon, photo_lat: p.lat, photo_lon: p.lon });
    f.append("photo", p.blob, p.name);
    const res = await PatrolAPI.postForm(`/api/alerts/${encodeURIComponent(p.alert_id)}/photos`, f);
    const body = await PatrolAPI.readBody(res);
    let o = outcome(res);
    if (o === "ok" && body && body.sha256 === p.sha256) {
      Object.assign(p, { state: "confirmed", blob: null, confirmed_at: Date.now(), error: "",
                         on_site: body.on_site, distance_m: body.distance_m });
    } else if (o === "ok") {
      o = "retry";  // the server stored something else: send the same bytes again
      Object.assign(p, { state: "queued", error: `SHA-256 ${body && body.sha256} ≠ ${p.sha256}` });
    } else if (o === "refused" || o === "conflict") {
      o = "refused";
      Object.assign(p, { state: "refused", error: PatrolAPI.messageOf(body, String(res.status)) });
    } else p.state = "queued";
    await put("photos", p);
    return o;
  }

  let running = null;
  let timer = null;
  let delay = 3000;
  let lastAuthFailure = false;

  /* Send whatever waits; one refused item does not stop the others. */
  function sync() {
    if (!running) {
      running = doSync().then(async (sent) => {
        // the server's new status and history replace the phone's copy before the pages look
        if (sent.length) {
          await PatrolAPI.prefetch(["/api/alerts", ...sent.map((id) => `/api/alerts/${encodeURIComponent(id)}`)]);
        }
        return sent;
      }).finally(() => { running = null; }).then((sent) => changed({ sent }), () => changed());
    }
    return running;
  }

  async function doSync() {
    clearTimeout(timer);
    lastAuthFailure = false;
    const sent = [];
    if (!PatrolAPI.token()) return sent;
    let stop = false;
    const user = localStorage.getItem("gis-patrol-user") || "";
    const mine = (x) => !x.user || !user || x.user === user;
    const verdicts = (await all("verdicts")).filter((v) => mine(v) && (v.state === "queued" || v.state === "sending"))
      .sort((a, b) => a.recorded_at.localeCompare(b.recorded_at));
    for (const queued of verdicts) {
      const v = await getOne("verdicts", queued.client_id);  // an earlier send may have updated its rev
      if (!v || (v.state !== "queued" && v.state !== "sending")) continue;
      try {
        const o = await sendVerdict(v);
        if (o === "ok" || o === "conflict") sent.push(v.alert_id);
        if (o === "retry" || o === "auth") { stop = true; lastAuthFailure = o === "auth"; break; }
      } catch (err) {
        v.state = "queued"; await put("verdicts", v); stop = true; break;
      }
    }
    if (!stop) {
      const owners = new Map((await all("verdicts")).map((v) => [v.client_id, v]));
      const photos = (await all("photos")).filter((p) => (p.state === "queued" || p.state === "sending")
        && mine(owners.get(p.verdict_client_id) || {}));
      for (const p of photos) {
        try {
          const o = await sendPhoto(p);
          if (o === "auth") { stop = true; lastAuthFailure = true; break; }
          if (o === "retry" && p.tries > 1) { stop = true; break; }
        } catch (err) {
          p.state = "queued"; await put("photos", p); stop = true; break;
        }
      }
    }
    await purge();
    if (await pendingCount()) {
      delay = stop ? Math.min(delay * 2, 60000) : 3000;
      timer = setTimeout(sync, delay);
    } else delay = 3000;
    return sent;
  }

  async function purge() {
    const old = Date.now() - KEEP_SENT_MS;
    for (const p of await all("photos")) if (p.state === "confirmed" && p.confirmed_at < old) await del("photos", p.photo_client_id);
    for (const v of await all("verdicts")) if ((v.state === "sent" || v.state === "dropped") && v.sent_at < old) await del("verdicts", v.client_id);
  }

  async function pendingCount() {
    const v = (await all("verdicts")).filter((x) => x.state === "queued" || x.state === "sending").length;
    const p = (await all("photos")).filter((x) => x.state === "queued" || x.state === "sending").length;
    return v + p;
  }

  /* Everything on the phone, newest first, each verdict with its photos. */
  async function snapshot() {
    const photos = await all("photos");
    const verdicts = (await all("verdicts")).sort((a, b) => b.recorded_at.localeCompare(a.recorded_at));
    return verdicts.map((v) => Object.assign({}, v, {
      photoItems: v.photos.map((id) => photos.find((p) => p.photo_client_id === id)).filter(Boolean),
    }));
  }

  /* The patrol chose after a 409: "mine" re-sends with the server's rev, "theirs" drops the
     verdict (its photos still upload: they are evidence of the visit). */
  async function resolve(clientId, choice) {
    const v = (await all("verdicts")).find((x) => x.client_id === clientId);
    if (!v || v.state !== "conflict") return;
    if (choice === "mine") {
      // a new decision gets a new id: the server may remember the refused one
      await del("verdicts", v.client_id);
      await put("verdicts", Object.assign({}, v, {
        client_id: uuid(), replaces: v.client_id, rev: v.server ? v.server.rev : v.rev, state: "queued",
        old_status: v.server ? v.server.status : v.old_status }));
    } else {
      await put("verdicts", Object.assign(v, { state: "dropped", sent_at: Date.now() }));
    }
    changed();
    sync();
  }

  /* Remove an item the server refused (the patrol read why). */
  async function discard(kind, key) {
    await del(kind === "photo" ? "photos" : "verdicts", key);
    changed();
  }

  window.addEventListener("online", () => { delay = 3000; sync(); });

  window.PatrolQueue = {
    record, preparePhoto, sync, snapshot, resolve, discard, pendingCount, uuid, sha256,
    onChange(fn) { listeners.push(fn); },
    authFailed() { return lastAuthFailure; },
  };
})();
