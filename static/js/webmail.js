/* The professional webmail: keyboard shortcuts, signatures (recipient completion: directory.js), drafts saved
   automatically, attachments by drag and drop with the encoded size checked before sending and
   a progress bar while uploading. Everything works without it; it only adds comfort. */
(function () {
  "use strict";

  function formatSize(bytes) {
    if (bytes < 1024) return bytes + " o";
    if (bytes < 1024 * 1024) return (bytes / 1024).toFixed(1).replace(".", ",") + " Kio";
    return (bytes / 1024 / 1024).toFixed(1).replace(".", ",") + " Mio";
  }

  function typing(target) {
    if (!target) return false;
    var tag = target.tagName;
    if (tag === "INPUT") return target.type !== "checkbox";  // a ticked row still takes j, k, x, e…
    return tag === "TEXTAREA" || tag === "SELECT" || target.isContentEditable;
  }

  /* --- keyboard shortcuts (documented on /pro/aide/) ------------------------------------- */
  function listRows() {
    var list = document.querySelector("[data-message-list]");
    return list ? Array.prototype.slice.call(list.querySelectorAll("tbody tr")) : [];
  }

  function moveInList(step) {
    var rows = listRows();
    if (!rows.length) return;
    var index = rows.findIndex(function (r) { return r.classList.contains("selected"); });
    var next = index === -1 ? 0 : Math.min(Math.max(index + step, 0), rows.length - 1);
    if (next === index) return;
    var link = rows[next].querySelector(".subject a");
    if (link) window.location.href = link.href;
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    var key = event.key;
    if (key === "x") { if (toggleCurrentRow()) event.preventDefault(); return; }
    if (key === "j") { moveInList(1); event.preventDefault(); return; }
    if (key === "k") { moveInList(-1); event.preventDefault(); return; }
    if (key === "/") {
      var search = document.querySelector("[data-search]");
      if (search) { search.focus(); event.preventDefault(); }
      return;
    }
    if (["r", "a", "f", "e", "#", "c"].indexOf(key) === -1) return;
    var target = document.querySelector('[data-shortcut="' + (key === "#" ? "\\#" : key) + '"]');
    if (target) { event.preventDefault(); target.click(); }
  });

  document.addEventListener("click", function (event) {
    var printButton = event.target.closest("[data-print]");
    if (printButton) { window.print(); return; }
  });

  /* --- selection of several messages (issue 16 item 16) --------------------------------
     Checkboxes are ordinary form fields of #bulk-form (Tab and Space work without this
     script); this adds "select all", shift-click (or Shift+Space) ranges, the `x` key and a
     count. The list pane may be replaced (paging, new mail): everything is delegated. */
  var lastPicked = null;
  var shiftHeld = false;
  document.addEventListener("keydown", function (event) { if (event.key === "Shift") shiftHeld = true; });
  document.addEventListener("keyup", function (event) { if (event.key === "Shift") shiftHeld = false; });

  function pickBoxes() {
    return Array.prototype.slice.call(document.querySelectorAll('[data-message-list] input[name="entries"]'));
  }

  function refreshSelection() {
    var boxes = pickBoxes();
    var picked = boxes.filter(function (b) { return b.checked; });
    boxes.forEach(function (b) { b.closest("tr").classList.toggle("picked", b.checked); });
    var count = document.querySelector("[data-bulk-count]");
    if (count) {
      count.textContent = picked.length === 0 ? "" :
        (picked.length === 1 ? "1 message sélectionné" : picked.length + " messages sélectionnés");
    }
    var all = document.querySelector("[data-pick-all]");
    if (all) {
      all.checked = boxes.length > 0 && picked.length === boxes.length;
      all.indeterminate = picked.length > 0 && picked.length < boxes.length;
    }
  }
  window.webmailRefreshSelection = refreshSelection;

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (target.matches && target.matches("[data-pick-all]")) {
      pickBoxes().forEach(function (b) { b.checked = target.checked; });
      refreshSelection();
      return;
    }
    if (!(target.matches && target.matches('[data-message-list] input[name="entries"]'))) return;
    var boxes = pickBoxes();
    if ((event.shiftKey || shiftHeld) && lastPicked && boxes.indexOf(lastPicked) !== -1) {
      var from = boxes.indexOf(lastPicked), to = boxes.indexOf(target);
      var lo = Math.min(from, to), hi = Math.max(from, to);
      for (var i = lo; i <= hi; i++) boxes[i].checked = target.checked;
    }
    lastPicked = target;
    refreshSelection();
  });

  // `x` ticks the row that has the focus, else the message open in the reading pane.
  function toggleCurrentRow() {
    var row = document.activeElement && document.activeElement.closest
      ? document.activeElement.closest("[data-message-list] tr") : null;
    if (!row) row = document.querySelector("[data-message-list] tr.selected");
    var box = row ? row.querySelector('input[name="entries"]') : null;
    if (!box) return false;
    box.checked = !box.checked;
    lastPicked = box;
    refreshSelection();
    box.focus();
    return true;
  }

  // Trashing or deleting several messages: the server asks for a confirmation (a page that
  // also works without this script); submitting with nothing ticked says so at once.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches || !form.matches("[data-bulk]")) return;
    if (!pickBoxes().some(function (b) { return b.checked; })) {
      event.preventDefault();
      var count = document.querySelector("[data-bulk-count]");
      if (count) count.textContent = "Sélectionnez d'abord un ou plusieurs messages (case à cocher ou touche x).";
    }
  });

  /* --- new mail appears by itself (issue 16 item 15) ------------------------------------
     Every data-poll-seconds the page asks the server (two small queries) for the unread counts
     and the newest message of the folder shown. Counts and the tab title follow; when new mail
     came and the first page of the folder is shown, the list's rows are replaced in place
     (no reload: what is typed, ticked or focused stays). */
  var panes = document.querySelector("[data-poll-url]");
  if (panes) {
    var pollUrl = panes.dataset.pollUrl;
    var every = Math.max(1, parseInt(panes.dataset.pollSeconds, 10) || 30) * 1000;
    var baseTitle = document.title.replace(/^\(\d+\) /, "");
    var polling = false;

    var setTitle = function (total) {
      document.title = (total > 0 ? "(" + total + ") " : "") + baseTitle;
    };

    var setCounts = function (folders) {
      document.querySelectorAll("[data-folder]").forEach(function (link) {
        var n = folders[link.dataset.folder];
        if (n === undefined) return;
        var count = link.querySelector(".count");
        if (!n) { if (count) count.remove(); return; }
        if (!count) {
          count = document.createElement("span");
          count.className = "count";
          link.appendChild(document.createTextNode(" "));
          link.appendChild(count);
        }
        count.innerHTML = "";
        count.appendChild(document.createTextNode(String(n)));
        var hidden = document.createElement("span");
        hidden.className = "sr-only";
        hidden.textContent = " non lus";
        count.appendChild(hidden);
      });
    };

    var refreshList = function (pane) {
      var listUrl = pollUrl.replace(/nouveautes\/$/, "");
      var ticked = pickBoxes().filter(function (b) { return b.checked; }).map(function (b) { return b.value; });
      var focused = document.activeElement && document.activeElement.name === "entries" ? document.activeElement.value : null;
      var before = pickBoxes().map(function (b) { return b.value; });
      return fetch(listUrl, { credentials: "same-origin", headers: { "HX-Request": "true", "HX-Target": "list-pane" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (!html) return;
          var fresh = new DOMParser().parseFromString("<div>" + html + "</div>", "text/html").body.firstChild;
          // The search form (.list-head) stays as it is; everything else is replaced.
          Array.prototype.slice.call(pane.children).forEach(function (child) {
            if (!child.classList.contains("list-head")) child.remove();
          });
          Array.prototype.slice.call(fresh.children).forEach(function (child) {
            if (!child.classList.contains("list-head")) pane.appendChild(child);
          });
          var current = document.querySelector("[data-entry]");
          pickBoxes().forEach(function (b) {
            if (ticked.indexOf(b.value) !== -1) b.checked = true;
            var row = b.closest("tr");
            if (current && b.value === current.dataset.entry) {
              row.classList.add("selected");
              var link = row.querySelector(".subject a");
              if (link) link.setAttribute("aria-current", "true");
            }
            if (before.indexOf(b.value) === -1) row.classList.add("arrived");
            if (focused && b.value === focused) b.focus();
          });
          refreshSelection();
          if (window.htmx) window.htmx.process(pane);
          var added = pickBoxes().filter(function (b) { return before.indexOf(b.value) === -1; }).length;
          var live = document.querySelector("[data-new-mail]");
          if (live && added) live.textContent = added === 1 ? "1 nouveau message." : added + " nouveaux messages.";
        });
    };

    var poll = function () {
      if (polling) return;
      polling = true;
      fetch(pollUrl, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) {
          if (!data) return null;
          setTitle(data.unread_total);
          setCounts(data.folders || {});
          var state = document.querySelector("[data-list-state]");
          var pane = document.getElementById("list-pane");
          if (state && pane && state.hasAttribute("data-live") && state.dataset.latest !== data.latest) {
            return refreshList(pane);
          }
          return null;
        })
        .catch(function () { /* offline for a moment: the next round tries again */ })
        .then(function () { polling = false; });
    };
    window.setInterval(poll, every);
  }

  /* --- compose ------------------------------------------------------------------------ */
  var form = document.getElementById("compose-form");
  if (!form) return;
  var maxBytes = parseInt(form.dataset.maxBytes, 10);
  var attachmentMax = parseInt(form.dataset.attachmentMax, 10);
  var fileInput = form.querySelector("#id_attachments");
  var fileList = form.querySelector("[data-file-list]");
  var estimateBox = form.querySelector("[data-size-estimate]");
  var errorsBox = document.getElementById("compose-errors");
  var body = form.querySelector("#id_body");
  var sender = form.querySelector("[data-signatures]");
  var draftStatus = form.querySelector("[data-draft-status]");
  var dirty = false;
  var filesDirty = false;  // the chosen files changed since the last save of the draft
  var leaving = false;     // sending or saving on purpose: no warning when the page changes
  var keptBox = form.querySelector("[data-kept-attachments]");

  function encodedEstimate() {
    // The same estimate as mailboxes.compose.estimated_encoded_size: base64 adds a third and
    // line ends; the server checks the exact size again before sending.
    var total = 4096 + new Blob([body.value]).size * 2;
    Array.prototype.forEach.call(fileInput.files, function (f) {
      total += Math.ceil(f.size / 3) * 4 * 78 / 76 + 512;
    });
    form.querySelectorAll("input[name=keep_attachments]:checked").forEach(function (box) {
      total += Math.ceil(parseInt(box.dataset.size, 10) / 3) * 4 * 78 / 76 + 512;
    });
    return Math.round(total);
  }

  function refreshFiles() {
    fileList.innerHTML = "";
    var problems = [];
    Array.prototype.forEach.call(fileInput.files, function (f, index) {
      var item = document.createElement("li");
      item.textContent = f.name + " (" + formatSize(f.size) + ")";
      var remove = document.createElement("button");
      remove.type = "button";
      remove.className = "btn-link";
      remove.textContent = "Retirer";
      remove.setAttribute("aria-label", "Retirer " + f.name);
      remove.addEventListener("click", function () {
        var dt = new DataTransfer();
        Array.prototype.forEach.call(fileInput.files, function (g, i) { if (i !== index) dt.items.add(g); });
        fileInput.files = dt.files;
        filesDirty = true;
        refreshFiles();
      });
      item.appendChild(remove);
      fileList.appendChild(item);
      if (f.size > attachmentMax) {
        problems.push("« " + f.name + " » pèse " + formatSize(f.size) + " : une pièce jointe ne peut dépasser " + formatSize(attachmentMax) + ".");
      }
    });
    var size = encodedEstimate();
    if (size > maxBytes) {
      problems.push("Une fois encodé pour l'envoi, le message pèserait environ " + formatSize(size) +
        " : la limite est de " + formatSize(maxBytes) + ". Retirez des pièces jointes ou répartissez-les sur plusieurs messages.");
    }
    estimateBox.textContent = problems.length ? problems.join(" ") :
      (fileInput.files.length ? "Taille estimée une fois encodé : " + formatSize(size) + "." : "");
    estimateBox.classList.toggle("over", problems.length > 0);
    return problems;
  }

  fileInput.addEventListener("change", function () { filesDirty = true; refreshFiles(); });
  form.addEventListener("change", function (event) {
    if (event.target.name === "keep_attachments") { dirty = true; refreshFiles(); }
  });

  var zone = form.querySelector("[data-dropzone]");
  ["dragenter", "dragover"].forEach(function (name) {
    zone.addEventListener(name, function (event) { event.preventDefault(); zone.classList.add("dragover"); });
  });
  ["dragleave", "drop"].forEach(function (name) {
    zone.addEventListener(name, function () { zone.classList.remove("dragover"); });
  });
  zone.addEventListener("drop", function (event) {
    event.preventDefault();
    if (!event.dataTransfer || !event.dataTransfer.files.length) return;
    var dt = new DataTransfer();
    Array.prototype.forEach.call(fileInput.files, function (f) { dt.items.add(f); });
    Array.prototype.forEach.call(event.dataTransfer.files, function (f) { dt.items.add(f); });
    fileInput.files = dt.files;
    refreshFiles();
    dirty = true;
    filesDirty = true;
  });

  // Switching the sending box swaps its signature when the body still holds the previous one.
  if (sender) {
    var previous = sender.selectedOptions[0] ? sender.selectedOptions[0].dataset.signature : "";
    sender.addEventListener("change", function () {
      var next = sender.selectedOptions[0].dataset.signature || "";
      var oldBlock = previous ? "\n\n-- \n" + previous : "";
      var newBlock = next ? "\n\n-- \n" + next : "";
      if (oldBlock && body.value.indexOf(oldBlock) !== -1) body.value = body.value.replace(oldBlock, newBlock);
      else if (!oldBlock && newBlock && body.value.indexOf(newBlock) === -1) body.value = newBlock + body.value;
      previous = next;
    });
  }

  function csrf() { return form.querySelector("input[name=csrfmiddlewaretoken]").value; }

  function showErrors(errors) {
    errorsBox.innerHTML = "";
    var list = document.createElement("ul");
    list.className = "errorlist";
    errors.forEach(function (e) { var li = document.createElement("li"); li.textContent = e; list.appendChild(li); });
    errorsBox.appendChild(list);
    errorsBox.focus();
  }

  // Drafts: saved every 15 seconds while something changed. The chosen files go with the save
  // only when the file list changed (and is within the limits); once saved they belong to the
  // draft and are listed with a "conserver" box, so later saves stay light.
  function showKept(attachments) {
    if (!keptBox || !attachments) return;
    var shown = Array.prototype.map.call(keptBox.querySelectorAll("input[name=keep_attachments]"), function (b) {
      return b.checked ? b.value : "-";
    }).join(",");
    if (shown === attachments.map(function (a) { return String(a.id); }).join(",")) return;  // unchanged: focus stays
    keptBox.querySelectorAll("label").forEach(function (label) { label.remove(); });
    attachments.forEach(function (a) {
      var label = document.createElement("label");
      var box = document.createElement("input");
      box.type = "checkbox";
      box.name = "keep_attachments";
      box.value = a.id;
      box.dataset.size = a.size;
      box.checked = true;
      label.appendChild(box);
      label.appendChild(document.createTextNode(" conserver " + a.filename + " (" + formatSize(a.size) + ")"));
      keptBox.appendChild(label);
    });
    keptBox.querySelector("[data-kept-legend]").textContent = "Pièces jointes du brouillon";
    keptBox.hidden = attachments.length === 0;
  }

  form.addEventListener("input", function () { dirty = true; });
  function saveDraft() {
    var withFiles = filesDirty && refreshFiles().length === 0;
    if (!dirty && !withFiles) return;
    var sentFiles = withFiles ? Array.prototype.slice.call(fileInput.files) : [];
    dirty = false;
    if (withFiles) filesDirty = false;
    var data = new FormData(form);
    data.delete("attachments");
    if (withFiles) {
      sentFiles.forEach(function (f) { data.append("attachments", f); });
    }
    fetch(form.dataset.draftUrl, { method: "POST", body: data, headers: { "X-CSRFToken": csrf() }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (json) {
        if (!json || !json.saved) { dirty = true; if (withFiles) filesDirty = true; return; }
        form.querySelector("input[name=draft]").value = json.draft;
        if (withFiles) {
          var rest = new DataTransfer();
          Array.prototype.forEach.call(fileInput.files, function (f) { if (sentFiles.indexOf(f) === -1) rest.items.add(f); });
          fileInput.files = rest.files;
        }
        // The draft's attachments as saved (an unticked one is no longer in it).
        showKept(json.attachments);
        refreshFiles();
        var now = new Date();  // "9 h 05", as TIME_FORMAT writes it on pages (mssante/formats/fr)
        draftStatus.textContent = "Brouillon enregistré à " + now.getHours() + " h " + String(now.getMinutes()).padStart(2, "0") + ".";
      })
      .catch(function () { dirty = true; if (withFiles) filesDirty = true; });
  }
  window.setInterval(saveDraft, 15000);
  form.saveDraftNow = function () { dirty = true; saveDraft(); };

  // Leaving the page with unsaved changes or files not yet in the draft asks first.
  window.addEventListener("beforeunload", function (event) {
    if (leaving || (!dirty && !fileInput.files.length)) return;
    event.preventDefault();
    event.returnValue = "";
  });

  // Sending: the size is checked first, then the upload shows its progress.
  var progressBox = form.querySelector("[data-progress]");
  var progress = progressBox.querySelector("progress");
  var sendButton = form.querySelector("[data-send]");
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var problems = refreshFiles();
    if (problems.length) { showErrors(problems); return; }
    var data = new FormData(form);
    var submitter = event.submitter;
    if (submitter && submitter.name) data.append(submitter.name, submitter.value);
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.getAttribute("action") || window.location.href);
    xhr.setRequestHeader("X-Webmail-Upload", "1");
    xhr.setRequestHeader("X-CSRFToken", csrf());
    sendButton.disabled = true;
    progressBox.hidden = false;
    progress.value = 0;
    xhr.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable) progress.value = Math.round(e.loaded * 100 / e.total);
    });
    xhr.addEventListener("load", function () {
      var json = null;
      try { json = JSON.parse(xhr.responseText); } catch (err) { json = null; }
      if (json && json.redirect) { leaving = true; window.location.href = json.redirect; return; }
      sendButton.disabled = false;
      progressBox.hidden = true;
      showErrors(json && json.errors ? json.errors : ["L'envoi a échoué ; réessayez."]);
    });
    xhr.addEventListener("error", function () {
      sendButton.disabled = false;
      progressBox.hidden = true;
      showErrors(["La connexion a été interrompue pendant l'envoi ; réessayez."]);
    });
    dirty = false;
    xhr.send(data);
  });
})();
