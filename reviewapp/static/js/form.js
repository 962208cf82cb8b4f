// Progressive enhancement for the review form: show or hide a question as soon as
// the answer it depends on changes (the server applies the same show-if rules).
(function () {
  "use strict";
  function update(form) {
    form.querySelectorAll("[data-show-if]").forEach(function (el) {
      var control = form.elements[el.getAttribute("data-show-if")];
      var value = control ? control.value : "";
      var wanted = el.getAttribute("data-show-in").split(" ");
      el.hidden = wanted.indexOf(value) === -1;
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form.review-form").forEach(function (form) {
      form.addEventListener("change", function () { update(form); });
      update(form);
    });
    var summary = document.getElementById("error-summary");
    if (summary) {
      // The errors come first: not the #fragment of the page before (which the browser
      // would scroll to, taking the focus away from the summary).
      if (window.location.hash) {
        history.replaceState(null, "", window.location.pathname + window.location.search);
      }
      summary.focus();
      window.addEventListener("load", function () { summary.focus(); summary.scrollIntoView(); });
    }
  });
})();
