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

/* A list's send: the progress (polled and swapped by htmx, templates/automation/_progress.html)
   carries its announcement in a hidden `data-announce` item; it goes into the page's lasting live
   region only when its key changes (state, tenth done, first failure), so a screen reader hears
   « Envoi en cours : 4 messages traités sur 12. », « Envoi terminé… », not every poll. A poll that
   fails says so, once, visibly too; the next one that succeeds says the progress again. */
(function () {
  "use strict";

  var live = document.querySelector("[data-progress-live]");
  if (!live) return;
  var failure = document.querySelector("[data-progress-error]");
  var current = function () { return document.querySelector("#progress [data-announce]"); };
  var first = current();
  var lastKey = first ? first.getAttribute("data-announce") : "";

  function say(key, text) {
    if (key === lastKey) return;
    lastKey = key;
    live.textContent = text;
  }

  document.body.addEventListener("htmx:afterSettle", function () {
    var item = current();
    if (!item) return;
    if (failure) failure.hidden = true;
    say(item.getAttribute("data-announce"), item.textContent.trim());
  });

  function lost(event) {
    var source = event.detail && event.detail.elt;
    if (!source || source.id !== "progress" || !failure) return;
    failure.hidden = false;
    say("error", failure.textContent.trim());
  }
  document.body.addEventListener("htmx:responseError", lost);
  document.body.addEventListener("htmx:sendError", lost);
})();
