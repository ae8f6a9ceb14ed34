/* Automation pages: leaving a form marked `data-warn-unsaved` (the model editor, a new
   convocation) with changes not saved asks first, with the browser's own « Quitter la page ? ».
   Saving the form is not leaving. A form sent back with errors (`data-warn-unsaved="dirty"`)
   holds what was typed and not saved: leaving it asks too. */
(function () {
  "use strict";

  var forms = document.querySelectorAll("form[data-warn-unsaved]");
  if (!forms.length) return;
  var dirty = false;
  var leaving = false;
  Array.prototype.forEach.call(forms, function (form) {
    if (form.getAttribute("data-warn-unsaved") === "dirty") dirty = true;
    form.addEventListener("input", function () { dirty = true; });
    form.addEventListener("change", function () { dirty = true; });
    form.addEventListener("submit", function () { leaving = true; });
  });
  window.addEventListener("beforeunload", function (event) {
    if (leaving || !dirty) return;
    event.preventDefault();
    event.returnValue = "";
  });
})();
