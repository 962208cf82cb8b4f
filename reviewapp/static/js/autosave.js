// Keeping what is typed. Every change is copied to this device (IndexedDB, written with
// strict durability: Chromium writes localStorage to disk seconds later, so a browser
// crash lost what it "held") and sent to the server as a draft within a second of a
// pause, on leaving a field and on leaving the page. "Saved on this device" is shown only
// once the device copy is on disk.
//
// The device copy belongs to one person and one review, and remembers which saved
// version (etag) it was based on. On opening the page it is put back only when the server
// still holds that version; if the server changed since and holds something else, both
// versions are shown and the officer chooses. A refused save (409) is never repeated with
// the same etag: the page asks the server what it holds and offers the same choice.
(function () {
  "use strict";
  var SKIP = { csrf_token: 1, action: 1, _etag: 1 };
  var DB_NAME = "deployment-review", STORE = "copies";
  var current = null; // the review form of this page, for signing out (see the end)

  function fields(form) {
    var pairs = [];
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name || SKIP[el.name] || el.type === "submit" || el.type === "button" || el.disabled) { return; }
      if ((el.type === "checkbox" || el.type === "radio") && !el.checked) { return; }
      if (el.tagName === "SELECT" && el.multiple) {
        Array.prototype.forEach.call(el.selectedOptions, function (o) { pairs.push([el.name, o.value]); });
        return;
      }
      pairs.push([el.name, el.value]);
    });
    return pairs;
  }

  function same(a, b) { return JSON.stringify(a) === JSON.stringify(b); }

  function ensureItems(form, pairs) {
    // The copy is the whole form: observations added while offline are rebuilt, and
    // observations the copy does not have are taken out.
    var wanted = {};
    pairs.forEach(function (p) {
      var m = /^([a-z_]+)-(\d+)-/.exec(p[0]);
      if (m) { wanted[m[1]] = Math.max(wanted[m[1]] || 0, parseInt(m[2], 10) + 1); }
    });
    Array.prototype.forEach.call(document.querySelectorAll("template[id^='item-template-']"), function (template) {
      var repeat = template.id.slice("item-template-".length);
      var end = form.querySelector('[data-repeat-end="' + repeat + '"]');
      if (!end) { return; }
      var count = wanted[repeat] || 0;
      for (var i = 0; i < count; i++) {
        if (document.getElementById("item-" + repeat + "-" + i)) { continue; }
        var html = template.innerHTML.split("__i__").join(String(i)).split("__n__").join(String(i + 1));
        end.insertAdjacentHTML("beforebegin", html);
      }
      form.querySelectorAll("fieldset[id^='item-" + repeat + "-']").forEach(function (item) {
        var n = parseInt(item.id.slice(("item-" + repeat + "-").length), 10);
        if (n >= count) { item.parentNode.removeChild(item); }
      });
    });
  }

  function apply(form, pairs) {
    ensureItems(form, pairs);
    var values = {};
    pairs.forEach(function (p) { (values[p[0]] = values[p[0]] || []).push(p[1]); });
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name || SKIP[el.name] || el.type === "submit" || el.type === "button") { return; }
      var given = values[el.name] || [];
      if (el.type === "checkbox" || el.type === "radio") {
        el.checked = given.indexOf(el.value) !== -1;
      } else if (el.tagName === "SELECT" && el.multiple) {
        Array.prototype.forEach.call(el.options, function (o) { o.selected = given.indexOf(o.value) !== -1; });
      } else if (el.type !== "hidden" || given.length) {
        el.value = given.length ? given[0] : "";
      }
    });
    form.dispatchEvent(new Event("change", { bubbles: true }));
  }

  // The device copies: one record per person and review, in IndexedDB.
  function openCopies() {
    return new Promise(function (resolve) {
      if (!window.indexedDB) { resolve(null); return; }
      var request;
      try { request = indexedDB.open(DB_NAME, 1); } catch (e) { resolve(null); return; }
      request.onupgradeneeded = function () {
        request.result.createObjectStore(STORE, { keyPath: "key" }).createIndex("review", "review");
      };
      request.onsuccess = function () { resolve(request.result); };
      request.onerror = function () { resolve(null); };
      request.onblocked = function () { resolve(null); };
    });
  }

  function Copies(db, user, review) {
    var key = JSON.stringify([user, review]);
    function run(mode, work) {
      return new Promise(function (resolve, reject) {
        // "strict": the transaction completes only once the copy is flushed to disk.
        var tx = db.transaction(STORE, mode, mode === "readwrite" ? { durability: "strict" } : undefined);
        var result = work(tx.objectStore(STORE));
        tx.oncomplete = function () { resolve(result && result.result); };
        tx.onerror = tx.onabort = function () { reject(tx.error); };
      });
    }
    this.get = function () {
      // Another person's copy of this review is never put back: it is removed.
      return run("readwrite", function (store) {
        var mine = store.get(key);
        store.index("review").openCursor(IDBKeyRange.only(review)).onsuccess = function (event) {
          var cursor = event.target.result;
          if (!cursor) { return; }
          if (cursor.value.user !== user) { cursor.delete(); }
          cursor.continue();
        };
        return mine;
      });
    };
    this.put = function (record) {
      record.key = key; record.user = user; record.review = review;
      return run("readwrite", function (store) { store.put(record); });
    };
    this.remove = function () { return run("readwrite", function (store) { store.delete(key); }); };
  }

  function serverState(url) {
    // What the server holds now: its edit page, read as data (never from a cache).
    return fetch(url, { credentials: "same-origin", cache: "no-store", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      }).then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var form = doc.querySelector("form.review-form[data-autosave-url]");
        if (!form) { return null; } // no longer an editable draft
        return { pairs: fields(form), etag: form.elements._etag.value };
      });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.querySelector("form.review-form[data-autosave-url]");
    if (!form) { return; }
    var status = document.getElementById("save-status");
    var panel = document.getElementById("device-version");
    var etag = form.elements._etag;
    var user = form.getAttribute("data-user") || "";
    var copies = null;        // null: this browser cannot keep a copy
    var confirmed = fields(form); // what the server is known to hold (etag.value)
    var dirty = false;        // the form holds something the server has not confirmed
    var sending = null;       // the save in flight (a promise)
    var writing = Promise.resolve(), writeAgain = false, writeBusy = false;
    var sendTimer = null, writeTimer = null, retryTimer = null, notBefore = 0;
    var paused = false;       // a choice between two versions is open: nothing is sent
    var leaving = false;      // the form itself is being posted
    var passing = false;
    var stopped = false;      // signing out: nothing more is kept or sent from this page
    var isReady = false, early = false, applying = false;
    var readyNow, whenReady = new Promise(function (resolve) { readyNow = resolve; });

    // Copies kept by earlier versions of this page (localStorage, no owner): not restored.
    try { localStorage.removeItem("deployment-review:" + form.getAttribute("data-review-id")); } catch (e) { /* none */ }

    function show(state, text) {
      if (!status) { return; }
      status.setAttribute("data-state", state);
      status.textContent = text || status.getAttribute("data-" + state) || "";
    }

    function stateOf() { return status ? status.getAttribute("data-state") : ""; }

    function keepHere(submitted) {
      // One write at a time; a change during a write is written right after it.
      // While a choice is open the copy is one of the two versions offered: left alone.
      if (!copies || paused || stopped) { return Promise.resolve(false); }
      if (writeBusy) { writeAgain = true; return writing; }
      writeBusy = true;
      var pairs = fields(form);
      var job;
      if (same(pairs, confirmed)) {
        job = copies.remove().then(function () { return false; });
      } else {
        job = copies.put({ pairs: pairs, base: etag.value, at: Date.now(), submitted: submitted === true })
          .then(function () { return true; });
      }
      writing = job.then(function (kept) {
        writeBusy = false;
        if (writeAgain) { writeAgain = false; return keepHere(submitted); }
        if (kept && same(fields(form), pairs) && ["pending", "local", "restored", ""].indexOf(stateOf()) !== -1) {
          show("local");
        }
        return kept;
      }, function () {
        writeBusy = false; writeAgain = false;
        return false; // the disk refused: the status does not claim a copy
      });
      return writing;
    }

    function schedule(ms) {
      clearTimeout(sendTimer);
      sendTimer = setTimeout(send, Math.max(ms, notBefore - Date.now()));
    }

    function retry(ms) { clearTimeout(retryTimer); retryTimer = setTimeout(send, ms); }

    function post(pairs, keepalive) {
      var body = new URLSearchParams();
      pairs.forEach(function (p) { body.append(p[0], p[1]); });
      body.append("_etag", etag.value);
      body.append("csrf_token", form.elements.csrf_token.value);
      return fetch(form.getAttribute("data-autosave-url"), {
        method: "POST", body: body, credentials: "same-origin", keepalive: keepalive === true,
        headers: { "Accept": "application/json" }
      }).then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (data) {
          return { status: response.status, data: data, after: response.headers.get("Retry-After") };
        });
      });
    }

    function send(keepalive) {
      clearTimeout(sendTimer); clearTimeout(retryTimer);
      if (paused || leaving || stopped || sending || !dirty) { return sending || Promise.resolve(); }
      if (navigator.onLine === false) { return Promise.resolve(); }
      if (Date.now() < notBefore) { schedule(0); return Promise.resolve(); }
      var pairs = fields(form);
      if (same(pairs, confirmed)) {
        dirty = false; keepHere(false); show("saved");
        return Promise.resolve();
      }
      sending = post(pairs, keepalive === true).then(function (r) {
        if (r.status === 200 && r.data.etag) {
          etag.value = r.data.etag;
          confirmed = pairs;
          dirty = !same(fields(form), pairs);
          // The copy now either goes, or is based on the version just saved.
          return keepHere(false).then(function (kept) {
            show(dirty ? (kept ? "local" : "pending") : "saved");
            if (dirty) { schedule(900); }
          });
        }
        if (r.status === 409) { return conflict(); }
        if (r.status === 422) { show("invalid"); return null; } // tried again after the next change
        if (r.status === 503) {
          var seconds = parseInt(r.after, 10);
          if (!(seconds > 0)) { seconds = 5; }
          notBefore = Date.now() + Math.min(seconds, 300) * 1000;
          show("busy", r.data.message);
          retry(Math.min(seconds, 300) * 1000);
          return null;
        }
        if (r.status === 507) {
          show("unwritable", r.data.message);
          retry(30000); // or at the next change
          return null;
        }
        show(copies ? "local" : "pending"); // signed out, or another answer: kept here
        retry(30000);
        return null;
      }, function () {
        show(copies ? "local" : "pending"); // the server cannot be reached: the copy stays here
        retry(5000);
      }).then(function () { sending = null; });
      return sending;
    }

    function conflict() {
      // The server holds another version: find out which, and never resend this etag.
      paused = true;
      show("conflict");
      return serverState(form.getAttribute("data-edit-url")).then(function (server) {
        if (!server) { return; } // submitted or gone: the page must be reloaded
        var pairs = fields(form);
        if (same(pairs, server.pairs)) {
          etag.value = server.etag; confirmed = server.pairs; dirty = false; paused = false;
          return keepHere(false).then(function () { show("saved"); });
        }
        offer({ pairs: pairs, at: Date.now() }, server);
      }, function () {
        paused = false; retry(5000);
      });
    }

    function offer(copy, server) {
      // Two versions: the one on this device and the one the server holds. The form waits
      // for the officer's choice; nothing is sent or overwritten meanwhile.
      paused = true;
      if (!panel) { return; }
      var when = new Date(copy.at).toLocaleString(document.documentElement.lang || undefined,
        { dateStyle: "short", timeStyle: "short" });
      panel.querySelector("[data-text]").textContent = panel.getAttribute("data-text").split("__TIME__").join(when);
      var list = panel.querySelector("[data-differences]");
      list.textContent = "";
      differences(copy.pairs, server.pairs).slice(0, 12).forEach(function (d) {
        var item = document.createElement("li");
        var name = document.createElement("strong");
        name.textContent = d.label + ": ";
        item.appendChild(name);
        item.appendChild(document.createTextNode(panel.getAttribute("data-device") + " «" + d.device + "» · " +
          panel.getAttribute("data-server") + " «" + d.server + "»"));
        list.appendChild(item);
      });
      form.inert = true;
      panel.hidden = false;
      panel.focus();
      panel.querySelector("[data-keep='device']").onclick = function () {
        panel.hidden = true; form.inert = false; paused = false;
        put(copy.pairs);
        etag.value = server.etag; confirmed = server.pairs; dirty = true;
        keepHere(false).then(function () { send(); });
      };
      panel.querySelector("[data-keep='server']").onclick = function () {
        panel.hidden = true;
        (copies ? copies.remove() : Promise.resolve()).then(function () { window.location.reload(); });
      };
    }

    function differences(device, server) {
      var a = {}, b = {}, names = [];
      device.forEach(function (p) { if (!(p[0] in a)) { names.push(p[0]); } (a[p[0]] = a[p[0]] || []).push(p[1]); });
      server.forEach(function (p) { if (!(p[0] in a) && !(p[0] in b)) { names.push(p[0]); } (b[p[0]] = b[p[0]] || []).push(p[1]); });
      return names.filter(function (n) { return !same(a[n] || [], b[n] || []); }).map(function (n) {
        var empty = panel.getAttribute("data-empty");
        return { label: labelOf(n), device: (a[n] || []).join(", ") || empty, server: (b[n] || []).join(", ") || empty };
      });
    }

    function labelOf(name) {
      var el = form.elements[name];
      if (el && el.length && !el.tagName) { el = el[0]; }
      var label = el && el.id ? form.querySelector('label[for="' + el.id + '"]') : null;
      if (!label && el && el.closest) {
        var group = el.closest("fieldset");
        label = group ? group.querySelector("legend") : null;
      }
      return label ? label.textContent.replace(/\s+/g, " ").replace(/\*/g, "").trim() : name;
    }

    function put(pairs) {
      // The change event apply() fires is not the officer's typing.
      applying = true;
      try { apply(form, pairs); } finally { applying = false; }
    }

    function changed() {
      if (applying) { return; }
      if (!isReady) { early = true; return; }
      if (paused || leaving || stopped) { return; }
      if (stateOf() !== "pending") { show("pending"); }
      dirty = true;
      clearTimeout(writeTimer);
      writeTimer = setTimeout(function () { keepHere(false); }, 150);
      schedule(900);
    }

    function flush(keepalive) {
      if (paused || leaving || stopped || !dirty) { return; }
      clearTimeout(writeTimer);
      keepHere(false);
      send(keepalive);
    }

    function ready() {
      // The device copy was looked at: from now on changes are kept and sent.
      isReady = true;
      form.setAttribute("data-autosave", "ready");
      if (early && !paused) { changed(); }
      readyNow();
    }

    function clearTimers() { clearTimeout(sendTimer); clearTimeout(writeTimer); clearTimeout(retryTimer); }

    current = {
      user: user,
      review: form.getAttribute("data-review-id"),
      // Signing out: send what the server does not hold yet, now (not after the pause, nor
      // after the wait a busy server asked for: the officer is leaving). True once the
      // server holds everything this page has; false if it could not be sent.
      settle: function () {
        return whenReady.then(function () {
          clearTimers();
          return Promise.resolve(sending).then(function () { return writing; });
        }).then(function () {
          if (paused) { return false; } // a choice between two versions is open
          if (!dirty) { return true; }
          notBefore = 0;
          return keepHere(false).then(function () { return send(); })
            .then(function () { return writing; })
            .then(function () { return !dirty && !paused; });
        });
      },
      stop: function () { stopped = true; clearTimers(); },
      resume: function () {
        // "Stay": what was typed meanwhile is kept and sent as usual.
        stopped = false;
        if (!same(fields(form), confirmed)) { dirty = true; }
        if (dirty && !paused) { keepHere(false); schedule(900); }
      }
    };

    function listen() {
      form.addEventListener("input", changed);
      form.addEventListener("change", changed);
      form.addEventListener("focusout", function () { flush(false); });
      document.addEventListener("visibilitychange", function () { if (document.visibilityState === "hidden") { flush(true); } });
      window.addEventListener("pagehide", function () { flush(true); });
      window.addEventListener("pageshow", function (event) { if (event.persisted) { leaving = false; passing = false; } });
      window.addEventListener("online", function () { send(); });
      form.addEventListener("submit", function (event) {
        // The form post carries the etag: first the save in flight must be answered and
        // the copy written, so the post is neither refused nor followed by a stale copy.
        if (passing || !isReady) { return; }
        event.preventDefault();
        if (leaving || paused) { return; }
        leaving = true;
        clearTimeout(sendTimer); clearTimeout(writeTimer); clearTimeout(retryTimer);
        var submitter = event.submitter || form.querySelector("button[value='save']");
        Promise.resolve(sending).then(function () { return writing; }).then(function () {
          if (paused) { leaving = false; return; } // refused meanwhile: the choice comes first
          return (dirty ? keepHere(true) : Promise.resolve()).then(function () {
            // Not from this microtask: while the first submit event is still being fired,
            // the browser ignores a new submission.
            setTimeout(function () { passing = true; form.requestSubmit(submitter); }, 0);
          });
        });
      });
    }

    function restore(copy, base) {
      put(copy.pairs);
      etag.value = base;
      dirty = true;
      show("restored");
      ready();
      send();
    }

    listen();
    openCopies().then(function (db) {
      if (!db) { ready(); return; }
      copies = new Copies(db, user, form.getAttribute("data-review-id"));
      return copies.get().then(function (copy) {
        if (!copy || same(copy.pairs, confirmed) || (copy.submitted && copy.base !== etag.value)) {
          // Nothing, what the server holds already, or a form post the server answered.
          if (copy) { copies.remove(); }
          ready();
          return;
        }
        if (copy.base === etag.value) { restore(copy, copy.base); return; }
        // The page holds another version than the copy's: ask the server which it holds now
        // (the page itself may come from the offline cache).
        return serverState(form.getAttribute("data-edit-url")).then(function (server) {
          if (!server) { ready(); return; }
          if (same(copy.pairs, server.pairs)) {
            copies.remove();
            if (!same(server.pairs, confirmed)) { put(server.pairs); }
            etag.value = server.etag; confirmed = server.pairs;
            ready();
          } else if (copy.base === server.etag) {
            confirmed = server.pairs;
            restore(copy, server.etag);
          } else {
            etag.value = server.etag; confirmed = server.pairs;
            offer(copy, server);
            ready();
          }
        }, function () {
          // The server cannot be reached: the copy is the newest thing known here. It is
          // sent once the server answers; if that is refused, the choice is offered then.
          restore(copy, copy.base);
        });
      });
    }).catch(function () { ready(); });
  });

  // Signing out on a shared laptop: the next officer must find nothing of this one's in the
  // browser. First what this person typed is sent (the form open here, then the copies of
  // other reviews kept on this device); once the server holds it, this person's copies
  // (every review, not only the open one) and the offline copies of pages are deleted and
  // the sign-out goes on. What could not be sent is named in a warning: stay, or sign out
  // anyway and lose it. The sign-in page never opens the device copies.
  var SEND_TIMEOUT = 8000;
  var channel = null;
  try { channel = window.BroadcastChannel ? new BroadcastChannel(DB_NAME) : null; } catch (e) { channel = null; }

  function mineOnly(db, user, work) {
    // Every record of this person, whatever the review.
    return new Promise(function (resolve, reject) {
      var found = [];
      var tx = db.transaction(STORE, work ? "readwrite" : "readonly", work ? { durability: "strict" } : undefined);
      tx.objectStore(STORE).openCursor().onsuccess = function (event) {
        var cursor = event.target.result;
        if (!cursor) { return; }
        if (cursor.value.user === user) {
          found.push(cursor.value);
          if (work) { cursor.delete(); }
        }
        cursor.continue();
      };
      tx.oncomplete = function () { resolve(found); };
      tx.onerror = tx.onabort = function () { reject(tx.error); };
    });
  }

  function within(ms, promise, otherwise) {
    return Promise.race([promise, new Promise(function (resolve) { setTimeout(function () { resolve(otherwise); }, ms); })]);
  }

  function sendCopy(out, record) {
    // A copy of a review not open here, posted as its page would: true once the server
    // holds it (saved now, or already the same as what it holds).
    var url = function (name) { return out.getAttribute(name).split("__ID__").join(encodeURIComponent(record.review)); };
    var body = new URLSearchParams();
    (record.pairs || []).forEach(function (p) { body.append(p[0], p[1]); });
    body.append("_etag", record.base || "");
    body.append("csrf_token", out.elements.csrf_token.value);
    var answer = fetch(url("data-autosave-url"), {
      method: "POST", body: body, credentials: "same-origin", headers: { "Accept": "application/json" }
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (response.status === 200 && data.etag) { return true; }
        if (response.status !== 409) { return false; } // offline, busy, full, invalid, signed out
        // Refused: the server holds another version. Stored only if it is this one.
        return serverState(url("data-edit-url")).then(function (server) {
          if (!server) { return record.submitted === true; } // no longer a draft: a form post was answered
          return same(server.pairs, record.pairs);
        });
      });
    }).catch(function () { return false; });
    return within(SEND_TIMEOUT, answer, false);
  }

  function sendMine(out, user) {
    // Resolves to the number of copies the server does not hold.
    var here = current && current.user === user ? within(SEND_TIMEOUT * 2, current.settle(), false) : Promise.resolve(true);
    return here.then(function (savedHere) {
      if (current) { current.stop(); }
      return openCopies().then(function (db) {
        if (!db) { return savedHere ? 0 : 1; }
        return mineOnly(db, user, false).then(function (records) {
          var unsent = 0;
          var chain = Promise.resolve();
          records.forEach(function (record) {
            chain = chain.then(function () {
              if (current && record.review === current.review) {
                if (!savedHere) { unsent += 1; }
                return;
              }
              return sendCopy(out, record).then(function (stored) { if (!stored) { unsent += 1; } });
            });
          });
          return chain.then(function () {
            db.close();
            return unsent + (!savedHere && !records.some(function (r) { return current && r.review === current.review; }) ? 1 : 0);
          });
        });
      });
    });
  }

  function forget(user) {
    // This person's copies go, every review; then the pages kept for offline use
    // (they are this person's pages; the static files stay).
    var copiesGone = openCopies().then(function (db) {
      if (!db) { return; }
      return mineOnly(db, user, true).then(function () { db.close(); });
    });
    var pagesGone = !window.caches ? Promise.resolve() : caches.keys().then(function (names) {
      return Promise.all(names.map(function (name) {
        return caches.open(name).then(function (cache) {
          return cache.keys().then(function (requests) {
            return Promise.all(requests.filter(function (request) {
              return new URL(request.url).pathname.indexOf("/static/") !== 0;
            }).map(function (request) { return cache.delete(request); }));
          });
        });
      }));
    });
    return Promise.all([copiesGone, pagesGone]);
  }

  function warning(out) {
    var panel = document.getElementById("sign-out-warning");
    if (panel) { return panel; }
    panel = document.createElement("section");
    panel.id = "sign-out-warning";
    panel.className = "notice sign-out-warning";
    panel.setAttribute("role", "alertdialog");
    panel.setAttribute("aria-labelledby", "sign-out-warning-h");
    panel.setAttribute("aria-describedby", "sign-out-warning-text");
    panel.hidden = true;
    var heading = document.createElement("h2");
    heading.id = "sign-out-warning-h";
    heading.textContent = out.getAttribute("data-unsent-title");
    var text = document.createElement("p");
    text.id = "sign-out-warning-text";
    text.textContent = out.getAttribute("data-unsent-text");
    var actions = document.createElement("div");
    actions.className = "actions";
    [["anyway", "data-anyway"], ["stay", "data-stay"]].forEach(function (choice) {
      var button = document.createElement("button");
      button.type = "button";
      button.setAttribute("data-sign-out", choice[0]);
      button.textContent = out.getAttribute(choice[1]);
      actions.appendChild(button);
    });
    panel.appendChild(heading); panel.appendChild(text); panel.appendChild(actions);
    var main = document.getElementById("main") || document.body;
    main.insertBefore(panel, main.firstChild);
    return panel;
  }

  document.addEventListener("DOMContentLoaded", function () {
    var out = document.querySelector("form[data-sign-out]");
    if (!out) { return; }
    var user = out.getAttribute("data-user");
    var button = out.querySelector("button[type='submit']");
    var label = button ? button.textContent : "";
    var passing = false, busy = false, gone = false;

    function waiting(on) {
      busy = on;
      if (!button) { return; }
      button.disabled = on;
      button.textContent = on ? out.getAttribute("data-sending") : label;
    }

    function leave() {
      gone = true;
      if (current) { current.stop(); }
      if (channel) { channel.postMessage({ signedOut: user }); }
      return forget(user).catch(function () { /* deleted what could be */ }).then(function () {
        passing = true;
        HTMLFormElement.prototype.submit.call(out);
      });
    }

    out.addEventListener("submit", function (event) {
      if (passing) { return; }
      event.preventDefault();
      if (busy) { return; }
      waiting(true);
      sendMine(out, user).catch(function () { return 1; }).then(function (unsent) {
        if (!unsent) { return leave(); }
        waiting(false);
        var panel = warning(out);
        var stay = panel.querySelector("[data-sign-out='stay']");
        panel.hidden = false;
        panel.scrollIntoView({ block: "nearest" });
        stay.focus();
        function close() {
          panel.hidden = true;
          panel.onkeydown = null;
          if (current) { current.resume(); }
          if (button) { button.focus(); }
        }
        stay.onclick = close;
        panel.onkeydown = function (e) { if (e.key === "Escape") { close(); } };
        panel.querySelector("[data-sign-out='anyway']").onclick = function () {
          panel.hidden = true;
          waiting(true);
          leave();
        };
      });
    });

    if (channel) {
      // Signed out in another tab: this one keeps and sends nothing more, and goes to
      // whatever the server shows now (the sign-in page).
      channel.onmessage = function (event) {
        if (event.data && event.data.signedOut === user && !gone) {
          gone = true;
          if (current) { current.stop(); }
          window.location.reload();
        }
      };
    }
    window.addEventListener("pageshow", function (event) {
      // Back to a page of the person who signed out (back-forward cache): ask the server.
      if (event.persisted && gone) { window.location.reload(); }
    });
  });

  // After signing out, nothing of the last person's pages stays in the cache (again: a
  // page being cached as the sign-out was sent may have been put there since).
  if (window.location.pathname === "/login" && window.caches) {
    caches.keys().then(function (names) { names.forEach(function (name) { caches.delete(name); }); });
  }
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/sw.js").catch(function () { /* not a secure context */ });
  }
})();
