/* Formatted writing in the composer (issue 16 item 18): a small toolbar (bold, italic, bulleted
   and numbered lists, link, clear formatting) over a contenteditable area that replaces the
   message textarea. Written here rather than taken from npm: five commands of the browser's own
   editing engine cover what a message needs, where an editor package (tens to hundreds of kB,
   its own schema, paste rules and CSS) would be mostly unused code to audit and keep current.

   The server stays the judge: the HTML goes in the hidden `body_html` field, is cleaned with nh3
   like received HTML and gives the plain-text part (mailboxes/formatting.py). Pasting keeps the
   text only (Word's styles, classes, comments and scripts never enter the editor). Without this
   script the textarea works as before and the message leaves as plain text. */
(function () {
  "use strict";

  var form = document.getElementById("compose-form");
  if (!form) return;
  var textarea = form.querySelector("#id_body");
  var htmlInput = form.querySelector("input[name=body_html]");
  if (!textarea || !htmlInput || typeof document.execCommand !== "function") return;

  var ALLOWED = { B: 1, STRONG: 1, I: 1, EM: 1, U: 1, UL: 1, OL: 1, LI: 1, A: 1, DIV: 1, P: 1, BR: 1, BLOCKQUOTE: 1 };
  var DROPPED = { SCRIPT: 1, STYLE: 1, HEAD: 1, TITLE: 1, TEMPLATE: 1, IFRAME: 1, OBJECT: 1 };

  /* Copy the allowed elements of an inert document (DOMParser runs and loads nothing); any
     other element is unwrapped, its text kept. Links keep an http(s) or mailto href only. */
  function copyAllowed(target, source) {
    Array.prototype.forEach.call(source.childNodes, function (node) {
      if (node.nodeType === 3) { target.appendChild(document.createTextNode(node.nodeValue)); return; }
      if (node.nodeType !== 1 || DROPPED[node.tagName]) return;
      if (!ALLOWED[node.tagName]) { copyAllowed(target, node); return; }
      var copy = document.createElement(node.tagName);
      if (node.tagName === "A") {
        var href = node.getAttribute("href") || "";
        if (/^(https?:|mailto:)/i.test(href)) copy.setAttribute("href", href);
      }
      copyAllowed(copy, node);
      target.appendChild(copy);
    });
  }

  function linesInto(target, text) {
    text.split("\n").forEach(function (line) {
      var div = document.createElement("div");
      if (line) div.textContent = line; else div.appendChild(document.createElement("br"));
      target.appendChild(div);
    });
  }

  function currentSignature() {
    var sender = form.querySelector("[data-signatures]");
    var option = sender && sender.selectedOptions[0];
    return option ? option.dataset.signature || "" : "";
  }

  function signatureBlock(signature) {
    var block = document.createElement("div");
    block.dataset.signature = "";
    linesInto(block, "-- \n" + signature);
    return block;
  }

  /* --- build the editor ------------------------------------------------------------------ */
  var label = form.querySelector("label[for=id_body]");
  if (label && !label.id) label.id = "id_body_label";
  var editor = document.createElement("div");
  editor.className = "rich-editor";
  editor.id = "body-editor";
  editor.contentEditable = "true";
  editor.setAttribute("role", "textbox");
  editor.setAttribute("aria-multiline", "true");
  if (label) editor.setAttribute("aria-labelledby", label.id);
  editor.spellcheck = true;

  if (htmlInput.value.trim()) {
    copyAllowed(editor, new DOMParser().parseFromString(htmlInput.value, "text/html").body);
  } else {
    // The signature block ("-- " line, then the signature) becomes a marked block, so that a
    // change of sending box can swap it (the HTML parser drops the textarea's first line end).
    var text = textarea.value;
    var signature = currentSignature();
    var marker = signature ? "-- \n" + signature : "";
    var at = marker ? text.indexOf(marker) : -1;
    while (at > 0 && text.charAt(at - 1) !== "\n") at = text.indexOf(marker, at + 1);
    if (at === -1) {
      linesInto(editor, text);
    } else {
      if (at > 0) linesInto(editor, text.slice(0, at - 1));
      editor.appendChild(signatureBlock(signature));
      var rest = text.slice(at + marker.length);
      if (rest) linesInto(editor, rest.replace(/^\n/, ""));
    }
  }

  var toolbar = document.createElement("div");
  toolbar.className = "editor-toolbar";
  toolbar.setAttribute("role", "toolbar");
  toolbar.setAttribute("aria-label", "Mise en forme du message");
  toolbar.setAttribute("aria-controls", editor.id);

  var BUTTONS = [
    { command: "bold", label: "Gras", text: "G", keys: "Ctrl+B", state: true },
    { command: "italic", label: "Italique", text: "I", keys: "Ctrl+I", state: true },
    { command: "insertUnorderedList", label: "Liste à puces", text: "• Liste", state: true },
    { command: "insertOrderedList", label: "Liste numérotée", text: "1. Liste", state: true },
    { command: "link", label: "Insérer un lien", text: "Lien", keys: "Ctrl+K" },
    { command: "clear", label: "Effacer la mise en forme", text: "Effacer" }
  ];
  var buttons = {};
  BUTTONS.forEach(function (spec) {
    var button = document.createElement("button");
    button.type = "button";
    button.className = "editor-button editor-" + spec.command;
    button.textContent = spec.text;
    button.title = spec.label + (spec.keys ? " (" + spec.keys + ")" : "");
    button.setAttribute("aria-label", spec.label);
    if (spec.state) button.setAttribute("aria-pressed", "false");
    button.dataset.command = spec.command;
    // Keep the editor's selection: a click on the toolbar must not take the focus first.
    button.addEventListener("mousedown", function (event) { event.preventDefault(); });
    toolbar.appendChild(button);
    buttons[spec.command] = button;
  });

  var linkRow = document.createElement("div");
  linkRow.className = "editor-link-row";
  linkRow.hidden = true;
  var linkLabel = document.createElement("label");
  linkLabel.htmlFor = "editor-link-url";
  linkLabel.textContent = "Adresse du lien";
  var linkInput = document.createElement("input");
  linkInput.type = "url";
  linkInput.id = "editor-link-url";
  linkInput.placeholder = "https://";
  var linkOk = document.createElement("button");
  linkOk.type = "button";
  linkOk.className = "btn btn-secondary";
  linkOk.textContent = "Insérer le lien";
  var linkCancel = document.createElement("button");
  linkCancel.type = "button";
  linkCancel.className = "btn-link";
  linkCancel.textContent = "Annuler";
  var linkError = document.createElement("span");
  linkError.className = "field-error";
  linkError.setAttribute("role", "alert");
  [linkLabel, linkInput, linkOk, linkCancel, linkError].forEach(function (n) { linkRow.appendChild(n); });

  textarea.hidden = true;
  textarea.setAttribute("aria-hidden", "true");
  textarea.tabIndex = -1;
  textarea.parentNode.insertBefore(toolbar, textarea);
  textarea.parentNode.insertBefore(linkRow, textarea);
  textarea.parentNode.insertBefore(editor, textarea);
  if (label) label.addEventListener("click", function (event) { event.preventDefault(); editor.focus(); });

  /* --- keep the form fields in step ----------------------------------------------------- */
  function sync() {
    htmlInput.value = editor.innerHTML;
    textarea.value = editor.innerText.replace(/\n$/, "");
  }

  function refreshState() {
    BUTTONS.forEach(function (spec) {
      if (!spec.state) return;
      var on = false;
      try { on = document.queryCommandState(spec.command); } catch (err) { on = false; }
      buttons[spec.command].setAttribute("aria-pressed", on ? "true" : "false");
    });
  }

  editor.addEventListener("input", sync);
  document.addEventListener("selectionchange", function () {
    if (editor.contains(document.getSelection().anchorNode)) refreshState();
  });

  /* --- commands --------------------------------------------------------------------------- */
  var savedRange = null;

  function openLink() {
    var selection = document.getSelection();
    savedRange = selection.rangeCount && editor.contains(selection.anchorNode) ? selection.getRangeAt(0).cloneRange() : null;
    linkRow.hidden = false;
    linkError.textContent = "";
    var anchor = selection.anchorNode && selection.anchorNode.parentElement && selection.anchorNode.parentElement.closest("a");
    linkInput.value = anchor && editor.contains(anchor) ? anchor.getAttribute("href") : "";
    linkInput.focus();
  }

  function closeLink() {
    linkRow.hidden = true;
    editor.focus();
    if (savedRange) {
      var selection = document.getSelection();
      selection.removeAllRanges();
      selection.addRange(savedRange);
    }
  }

  function insertLink() {
    var url = linkInput.value.trim();
    if (url && !/^[a-z][a-z0-9+.-]*:/i.test(url)) url = (url.indexOf("@") > 0 && url.indexOf("/") === -1 ? "mailto:" : "https://") + url;
    if (!/^(https?:\/\/[^\s]+|mailto:[^\s]+@[^\s]+)$/i.test(url)) {
      linkError.textContent = "Saisissez une adresse web (https://…) ou une adresse de messagerie.";
      linkInput.focus();
      return;
    }
    closeLink();
    var selection = document.getSelection();
    if (selection.isCollapsed) {
      var anchor = document.createElement("a");
      anchor.href = url;
      anchor.textContent = url.replace(/^mailto:/i, "");
      document.execCommand("insertHTML", false, anchor.outerHTML);
    } else {
      document.execCommand("createLink", false, url);
    }
    sync();
  }

  function run(command) {
    if (command === "link") { openLink(); return; }
    editor.focus();
    if (command === "clear") {
      document.execCommand("removeFormat");
      document.execCommand("unlink");
    } else {
      document.execCommand(command);
    }
    sync();
    refreshState();
  }

  toolbar.addEventListener("click", function (event) {
    var button = event.target.closest("[data-command]");
    if (button) run(button.dataset.command);
  });
  // Arrow keys move between the toolbar's buttons (WAI-ARIA toolbar pattern).
  toolbar.addEventListener("keydown", function (event) {
    if (event.key !== "ArrowRight" && event.key !== "ArrowLeft") return;
    var list = Array.prototype.slice.call(toolbar.querySelectorAll("button"));
    var index = list.indexOf(document.activeElement);
    var next = list[(index + (event.key === "ArrowRight" ? 1 : list.length - 1)) % list.length];
    next.focus();
    event.preventDefault();
  });
  linkOk.addEventListener("click", insertLink);
  linkCancel.addEventListener("click", closeLink);
  linkInput.addEventListener("keydown", function (event) {
    if (event.key === "Enter") { event.preventDefault(); insertLink(); }
    if (event.key === "Escape") { event.preventDefault(); closeLink(); }
  });
  editor.addEventListener("keydown", function (event) {
    if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "k") { event.preventDefault(); openLink(); }
  });

  /* --- paste and drop: the text only ------------------------------------------------------ */
  editor.addEventListener("paste", function (event) {
    event.preventDefault();
    var data = event.clipboardData || window.clipboardData;
    var text = data ? data.getData("text/plain") : "";
    if (text) document.execCommand("insertText", false, text.replace(/\r\n?/g, "\n"));
    sync();
  });
  editor.addEventListener("drop", function (event) {
    event.preventDefault();
    var text = event.dataTransfer ? event.dataTransfer.getData("text/plain") : "";
    if (!text) return;  // files go to the attachments' drop zone, not into the text
    if (document.caretRangeFromPoint) {
      var range = document.caretRangeFromPoint(event.clientX, event.clientY);
      if (range) { var s = document.getSelection(); s.removeAllRanges(); s.addRange(range); }
    }
    document.execCommand("insertText", false, text);
    sync();
  });

  /* --- the sending box's signature follows a change of box (as webmail.js does for text) --- */
  var sender = form.querySelector("[data-signatures]");
  if (sender) {
    sender.addEventListener("change", function () {
      var next = currentSignature();
      var block = editor.querySelector("[data-signature]");
      if (block && next) block.replaceWith(signatureBlock(next));
      else if (block) block.remove();
      else if (next) {
        var spacer = document.createElement("div");
        spacer.appendChild(document.createElement("br"));
        editor.insertBefore(signatureBlock(next), editor.firstChild);
        editor.insertBefore(spacer, editor.firstChild);
      }
      sync();
    });
  }

  sync();
})();
