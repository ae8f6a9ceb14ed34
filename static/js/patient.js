// Patient forms: a form's error summary takes the focus. File fields (templates/patients/_file_picker.html):
// the browser's input is hidden from sight behind a label styled as a button, and the names chosen
// are written under it. Composer: warn, before sending, about a file over the limit (the server
// checks again, by content). No inline script: CSP is strict.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    // A refused form: the summary of what went wrong takes the focus (read out, seen first).
    var error = document.querySelector(".form-error[role=alert][tabindex='-1']");
    if (error) { error.focus(); }
    Array.prototype.forEach.call(document.querySelectorAll("[data-file-picker]"), filePicker);
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

  // One file field: the label-button shows, the input is hidden from sight only (it stays the
  // keyboard stop, Space or Enter opens the chooser, a screen reader reads its labels and value),
  // and each choice is written out, with a warning for a file over the form's limit.
  function filePicker(field) {
    var input = field.querySelector("input[type=file]");
    var button = field.querySelector(".file-button");
    var summary = field.querySelector("[data-role=file-summary]");
    if (!input || !button || !summary) { return; }
    var form = input.form;
    var max = form && form.hasAttribute("data-max-file") ? parseInt(form.getAttribute("data-max-file"), 10) : 0;
    var maxLabel = form ? form.getAttribute("data-max-label") : "";
    input.classList.add("visually-hidden");
    button.hidden = false;
    summary.hidden = false;
    function show() {
      var names = [];
      var tooBig = [];
      Array.prototype.forEach.call(input.files || [], function (file) {
        names.push(file.name);
        if (max && file.size > max) { tooBig.push(file.name); }
      });
      if (!names.length) {
        summary.textContent = summary.getAttribute("data-none");
      } else {
        summary.textContent = (names.length > 1 ? "Fichiers choisis : " : "Fichier choisi : ") + names.join(", ");
      }
      if (tooBig.length) {
        summary.textContent += ". Trop volumineux (" + maxLabel + " au plus par fichier), choisissez-en un autre : " + tooBig.join(", ");
      }
    }
    input.addEventListener("change", show);
    // Back to the page (the browser's cache) with files still chosen: say which.
    if (input.files && input.files.length) { show(); }
  }
})();
