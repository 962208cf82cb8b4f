// The app's service worker: pages and assets stay usable when the connection drops.
// Static files: from the cache first. Pages: from the network, with the last copy kept
// for when the network is gone. Nothing from another origin is touched.
"use strict";
// A new CACHE name whenever a static file changes meaning (v2: the device copy moved from
// localStorage to IndexedDB; v3: signing out sends, then deletes, the copies): static files
// are served from the cache first, so an old cache would keep the old scripts.
// Pages are cached as the signed-in person saw them: autosave.js deletes them at sign-out.
var CACHE = "deployment-review-v3";

self.addEventListener("install", function () { self.skipWaiting(); });
self.addEventListener("activate", function (event) {
  event.waitUntil(caches.keys().then(function (names) {
    return Promise.all(names.filter(function (name) { return name !== CACHE; }).map(function (name) { return caches.delete(name); }));
  }).then(function () { return self.clients.claim(); }));
});

self.addEventListener("fetch", function (event) {
  var request = event.request;
  var url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) { return; }
  if (url.pathname.indexOf("/static/") === 0) {
    event.respondWith(caches.open(CACHE).then(function (cache) {
      return cache.match(request).then(function (hit) {
        return hit || fetch(request).then(function (response) {
          if (response.ok) { cache.put(request, response.clone()); }
          return response;
        });
      });
    }));
    return;
  }
  if (request.mode === "navigate") {
    event.respondWith(fetch(request).then(function (response) {
      if (response.ok && !response.redirected) {
        var copy = response.clone();
        caches.open(CACHE).then(function (cache) { cache.put(request, copy); });
      }
      return response;
    }).catch(function () {
      return caches.match(request).then(function (hit) { return hit || Response.error(); });
    }));
  }
});
