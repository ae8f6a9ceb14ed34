// File fields (templates/_file_picker.html, and the professional composer's attachments), on every
// page: the browser's own input is cut off at 320 px with the text at 200 %, so it is hidden from
// sight behind a label styled as a button, and the names chosen are written under it. Without this
// script, the browser's input. No inline script: CSP is strict.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("[data-file-picker]"), filePicker);
  });

  // One file field: the label-button shows, the input is hidden from sight only (it stays the
  // keyboard stop, Space or Enter opens the chooser, a screen reader reads its labels and value),
  // and each choice is written out, with a warning for a file over the form's limit.
  function filePicker(field) {
    var input = field.querySelector("input[type=file]");
    var button = field.querySelector(".file-button");
    var summary = field.querySelector("[data-role=file-summary]");
    if (!input || !button) { return; }
    var form = input.form;
    var max = form && form.hasAttribute("data-max-file") ? parseInt(form.getAttribute("data-max-file"), 10) : 0;
    var maxLabel = form ? form.getAttribute("data-max-label") : "";
    input.classList.add("visually-hidden");
    button.hidden = false;
    if (!summary) { return; }  // the field writes the names out itself (the composer's list)
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
