// Keeping what is typed: every change is copied to this device (localStorage) at once,
// and sent to the server as a draft every few seconds when it can be reached. When the
// page opens with a copy on this device that the server does not have yet (a crash, a
// closed tab, a server restart, a lost connection), the copy is put back into the form
// and saved. The copy is removed once the server has confirmed that exact content.
(function () {
  "use strict";
  var SKIP = { csrf_token: 1, action: 1, _etag: 1 };

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
    // Observations added while offline exist only in the copy: rebuild them.
    var wanted = {};
    pairs.forEach(function (p) {
      var m = /^([a-z_]+)-(\d+)-/.exec(p[0]);
      if (m) { wanted[m[1]] = Math.max(wanted[m[1]] || 0, parseInt(m[2], 10) + 1); }
    });
    Object.keys(wanted).forEach(function (repeat) {
      var template = document.getElementById("item-template-" + repeat);
      var end = form.querySelector('[data-repeat-end="' + repeat + '"]');
      if (!template || !end) { return; }
      for (var i = 0; i < wanted[repeat]; i++) {
        if (document.getElementById("item-" + repeat + "-" + i)) { continue; }
        var html = template.innerHTML.split("__i__").join(String(i)).split("__n__").join(String(i + 1));
        end.insertAdjacentHTML("beforebegin", html);
      }
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

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.querySelector("form.review-form[data-autosave-url]");
    if (!form || !window.localStorage) { return; }
    var key = "deployment-review:" + form.getAttribute("data-review-id");
    var status = document.getElementById("save-status");
    var etag = form.elements._etag;
    var dirty = false, sending = false, timer = null, held = null;

    function show(state) {
      if (!status) { return; }
      status.setAttribute("data-state", state);
      status.textContent = status.getAttribute("data-" + state) || "";
    }

    function keepHere(submitted) {
      var copy = { pairs: fields(form), etag: etag.value, at: Date.now(), submitted: submitted === true };
      localStorage.setItem(key, JSON.stringify(copy));
      dirty = true;
      show("local");
    }

    function send() {
      if (!dirty || sending || navigator.onLine === false) { return; }
      var snapshot = localStorage.getItem(key);
      if (!snapshot) { dirty = false; return; }
      sending = true;
      var body = new URLSearchParams();
      JSON.parse(snapshot).pairs.forEach(function (p) { body.append(p[0], p[1]); });
      body.append("_etag", etag.value);
      body.append("csrf_token", form.elements.csrf_token.value);
      fetch(form.getAttribute("data-autosave-url"), {
        method: "POST", body: body, credentials: "same-origin", headers: { "Accept": "application/json" }
      }).then(function (response) {
        return response.json().then(function (data) { return { ok: response.ok, status: response.status, data: data }; });
      }).then(function (r) {
        if (r.ok) {
          etag.value = r.data.etag;
          if (localStorage.getItem(key) === snapshot) { localStorage.removeItem(key); dirty = false; }
          show("saved");
        } else {
          show(r.status === 409 ? "conflict" : "invalid");
        }
      }).catch(function () {
        show("local"); // the server cannot be reached: the copy stays on this device
      }).then(function () {
        sending = false;
        if (held) { var submitter = held; held = null; form.requestSubmit(submitter); }
      });
    }

    var stored = localStorage.getItem(key);
    if (stored) {
      var copy = JSON.parse(stored);
      // A copy taken as the form itself was sent is obsolete once the server answered
      // with a newer version; kept only if that sending never arrived.
      var answered = copy.submitted && copy.etag !== etag.value;
      if (answered || same(copy.pairs, fields(form))) {
        localStorage.removeItem(key);
      } else {
        apply(form, copy.pairs);
        // A page served from the cache may be older than the last save: the copy knows.
        if (copy.etag) { etag.value = copy.etag; }
        dirty = true;
        show("restored");
      }
    }
    form.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(function () { keepHere(false); }, 250); });
    form.addEventListener("change", function () { keepHere(false); });
    form.addEventListener("submit", function (event) {
      keepHere(true);
      if (sending) {
        // Let the background save finish first, so the page sends the newest etag.
        event.preventDefault();
        held = event.submitter || null;
        if (!held) { held = form.querySelector("button[value='save']"); }
      }
    });
    window.addEventListener("online", send);
    setInterval(send, 3000);
    send();
  });

  // After signing out, nothing of the last person's pages stays in the cache.
  if (window.location.pathname === "/login" && window.caches) {
    caches.keys().then(function (names) { names.forEach(function (name) { caches.delete(name); }); });
  }
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/sw.js").catch(function () { /* not a secure context */ });
  }
})();
