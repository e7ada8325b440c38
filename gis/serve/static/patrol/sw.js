/* The patrol app's service worker: keeps the app shell so the app opens with
   no network.

   Scope /patrol/. On install it stores the shell (page, scripts, styles,
   Leaflet, icons) in the "patrol-shell" cache; shell requests are answered
   from that cache first and refreshed from the network in the background, so
   a new version arrives on the next start. The team's alerts and their chips
   are kept by the page itself (api.js, cache "patrol-data") when the list
   loads; here a GET to /api/ whose network request fails is answered from
   that copy, so a reload while offline still finds them. Nothing else is
   cached: POSTs (verdicts, photos) go to the network or wait in the page's
   IndexedDB queue. */
"use strict";
const SHELL_CACHE = "patrol-shell-v1";
const DATA_CACHE = "patrol-data-v1";
const SHELL = [
  "./", "index.html", "app.css", "texts.js", "ui.js", "api.js", "queue.js", "app.js", "manifest.webmanifest",
  "icon.svg", "icon-192.png", "/static/assets/leaflet/leaflet.js", "/static/assets/leaflet/leaflet.css",
];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(SHELL_CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k.startsWith("patrol-shell-") && k !== SHELL_CACHE).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

function shellKey(request) {
  const url = new URL(request.url);
  if (request.mode === "navigate") return new URL("index.html", self.registration.scope).href;
  url.search = "";
  return url.href;
}

async function fromShell(request) {
  const cache = await caches.open(SHELL_CACHE);
  const key = shellKey(request);
  const hit = await cache.match(key);
  const fresh = fetch(request).then((res) => {
    if (res.ok && res.type === "basic") cache.put(key, res.clone());
    return res;
  });
  if (hit) {
    fresh.catch(() => null);
    return hit;
  }
  return fresh;
}

async function apiGet(request) {
  try {
    return await fetch(request);
  } catch (err) {
    const hit = await (await caches.open(DATA_CACHE)).match(request.url);
    if (hit) return hit;
    throw err;
  }
}

self.addEventListener("fetch", (event) => {
  const req = event.request;
  if (req.method !== "GET") return;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin) return;
  if (url.pathname.startsWith("/api/")) {
    event.respondWith(apiGet(req));
    return;
  }
  const inScope = req.url.startsWith(self.registration.scope) || url.pathname.startsWith("/static/assets/leaflet/");
  if (inScope) event.respondWith(fromShell(req));
});
