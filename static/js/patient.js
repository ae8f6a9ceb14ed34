// Patient forms: a form's error summary takes the focus (file fields: static/js/file-picker.js).
// Composer: warn, before sending, about a file over the limit (the server
// checks again, by content). No inline script: CSP is strict.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    // A refused form: the summary of what went wrong takes the focus (read out, seen first).
    var error = document.querySelector(".form-error[role=alert][tabindex='-1']");
    if (error) { error.focus(); }
    var form = document.querySelector("form[data-max-file]");
    if (!form) { return; }
    // Leaving the page (a link, the back button) with a text not yet sent: the browser asks
    // first, so a tap on the wrong link does not lose what was written.
    var text = form.querySelector("textarea");
    var sending = false;
    form.addEventListener("submit", function () { sending = true; });
    window.addEventListener("beforeunload", function (event) {
      if (sending || !text || text.value.trim() === text.defaultValue.trim()) { return; }
      event.preventDefault();
      event.returnValue = "";
    });
  });
})();
