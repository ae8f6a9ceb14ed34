// Profile lists take any number of rows (issue 16 item 10): "Ajouter une ligne" appends the
// formset's empty row (its <template>), numbered after the others, and focuses its first field.
// Without JavaScript the page keeps its blank rows and says to save and come back.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("button[data-add-row]"), function (button) {
      var prefix = button.getAttribute("data-add-row");
      var rows = document.querySelector('[data-rows="' + prefix + '"]');
      var template = document.querySelector('template[data-empty-row="' + prefix + '"]');
      var total = document.getElementById("id_" + prefix + "-TOTAL_FORMS");
      if (!rows || !template || !total) { return; }
      button.hidden = false;
      button.addEventListener("click", function () {
        var index = parseInt(total.value, 10);
        var html = template.innerHTML.replace(/__prefix__/g, String(index));
        var holder = document.createElement("div");
        holder.innerHTML = html;
        var row = holder.firstElementChild;
        rows.appendChild(row);
        total.value = String(index + 1);
        var first = row.querySelector("input:not([type=hidden]), select, textarea");
        if (first) { first.focus(); }
      });
    });
  });
})();
