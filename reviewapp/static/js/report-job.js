// The progress page of a report job: asks the server where the job stands every second
// and updates the bar, the message and the download link. Without this script the page
// reloads itself (a meta refresh in <noscript>) and has a reload link.
"use strict";
(function () {
  var box = document.getElementById("report-job");
  if (!box || !window.fetch) { return; }
  var bar = document.getElementById("job-progress");
  var message = document.getElementById("job-message");
  var download = document.getElementById("job-download");
  var waiting = document.getElementById("job-waiting");
  var state = box.getAttribute("data-state");
  var failures = 0;

  function show(status) {
    bar.value = status.percent;
    bar.textContent = status.percent + "%";
    message.textContent = status.message;
    state = status.state;
    if (state === "done") { download.hidden = false; }
    if (state === "failed") { message.className = "flash flash-error"; }
    if (state === "done" || state === "failed") { waiting.hidden = true; }
  }

  function poll() {
    if (state !== "queued" && state !== "running") { return; }
    fetch(box.getAttribute("data-status"), { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error(String(response.status)); }
        return response.json();
      })
      .then(function (status) { failures = 0; show(status); })
      .catch(function () { failures += 1; })
      .then(function () { window.setTimeout(poll, failures ? Math.min(10000, 1000 * (failures + 1)) : 1000); });
  }
  window.setTimeout(poll, 500);
}());
