/* The directory in the browser: recipient completion on every field marked
   data-directory-complete="<completion URL>" (the composer's To and Cc ask webmail:recipients:
   contacts first, then the directory; other fields may ask directory:completion), and keyboard use of the
   search page. Requests are POSTed (no search term or INS in a URL), debounced, and a newer
   keystroke aborts the older request, so only the latest answer is ever shown.
   Everything works without it: recipients can be typed in full and the search page is a form. */
(function () {
  "use strict";

  var DELAY = 180;

  function csrfToken(input) {
    var form = input.form;
    var field = (form && form.querySelector("input[name=csrfmiddlewaretoken]")) ||
      document.querySelector("input[name=csrfmiddlewaretoken]");
    return field ? field.value : "";
  }

  function lastPart(value) {
    var parts = value.split(/[,;]/);
    return parts[parts.length - 1].trim();
  }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text) node.textContent = text;
    return node;
  }

  function Completion(input) {
    this.input = input;
    this.url = input.dataset.directoryComplete;
    this.box = document.getElementById(input.dataset.suggestions) || this.makeBox();
    this.listId = input.id + "-listbox";
    this.items = [];
    this.active = -1;
    this.timer = null;
    this.controller = null;
    this.sequence = 0;
    this.status = this.makeStatus();
    input.setAttribute("role", "combobox");
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-expanded", "false");
    input.setAttribute("aria-controls", this.listId);
    input.addEventListener("input", this.onInput.bind(this));
    input.addEventListener("keydown", this.onKey.bind(this));
    input.addEventListener("blur", function () { window.setTimeout(this.close.bind(this), 150); }.bind(this));
  }

  Completion.prototype.makeBox = function () {
    var box = element("div", "suggestions");
    this.input.insertAdjacentElement("afterend", box);
    return box;
  };

  // What a screen reader hears of an answer: one short line (how many suggestions, or the
  // message), never the whole list again at each keystroke; the list itself is read option by
  // option as the arrows move through it (aria-activedescendant).
  Completion.prototype.makeStatus = function () {
    var status = element("p", "sr-only", "");
    status.setAttribute("role", "status");
    status.setAttribute("aria-live", "polite");
    this.box.insertAdjacentElement("afterend", status);
    return status;
  };

  Completion.prototype.announce = function (text) {
    if (this.status.textContent !== text) this.status.textContent = text;
  };

  Completion.prototype.onInput = function () {
    window.clearTimeout(this.timer);
    this.timer = null;
    // What the field says changed: an answer still on its way answers an older term.
    this.sequence += 1;
    this.abort();
    var term = lastPart(this.input.value);
    if (term.replace(/[^0-9A-Za-zÀ-ÿ]/g, "").length < 2) { this.abort(); this.close(); return; }
    this.timer = window.setTimeout(function () { this.timer = null; this.fetch(term); }.bind(this), DELAY);
  };

  Completion.prototype.abort = function () {
    if (this.controller) this.controller.abort();
    this.controller = null;
  };

  Completion.prototype.fetch = function (term) {
    this.abort();
    var controller = new AbortController();
    var sequence = ++this.sequence;
    this.controller = controller;
    var body = new URLSearchParams({ q: term });
    fetch(this.url, {
      method: "POST",
      body: body,
      signal: controller.signal,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(this.input), "Accept": "application/json" },
    }).then(function (response) {
      return response.json().then(function (data) { return { status: response.status, data: data }; });
    }).then(function (answer) {
      if (sequence !== this.sequence) return;  // a newer keystroke won
      this.controller = null;
      this.render(answer.status === 200 ? answer.data : { error: answer.data.error || "" });
    }.bind(this)).catch(function (error) {
      if (sequence !== this.sequence) return;
      this.controller = null;
      if (error.name !== "AbortError") this.render({ error: "" });
    }.bind(this));
  };

  Completion.prototype.render = function (data) {
    this.box.textContent = "";
    this.items = [];
    this.active = -1;
    if (data.error) {
      this.box.appendChild(element("p", "field-error", data.error));
      this.announce(data.error);
      this.setOpen(false);
      return;
    }
    if (data.ins) {
      this.box.appendChild(element("p", data.ins.valid ? "ok-msg" : "field-error", data.ins.message));
      if (data.ins.valid) this.items.push({ address: data.ins.address, name: data.ins.message, kind: "INS" });
    }
    (data.results || []).forEach(function (item) { this.items.push(item); }.bind(this));
    if (!this.items.length) {
      var none = "Aucune correspondance dans l'annuaire.";
      if (!data.ins) this.box.appendChild(element("p", "muted", none));
      this.announce(data.ins ? data.ins.message : none);
      this.setOpen(false);
      return;
    }
    var count = this.items.length;
    this.announce((data.ins && !data.ins.valid ? data.ins.message + " " : "") +
      (count === 1 ? "1 destinataire proposé" : count + " destinataires proposés") +
      ", flèches haut et bas pour choisir, Entrée pour ajouter.");
    var list = element("ul", "completion-list");
    list.id = this.listId;
    list.setAttribute("role", "listbox");
    list.setAttribute("aria-label", "Destinataires proposés");
    this.items.forEach(function (item, index) {
      var option = element("li", "completion-option");
      option.id = this.listId + "-" + index;
      option.setAttribute("role", "option");
      option.setAttribute("aria-selected", "false");
      option.dataset.address = item.address;
      var head = element("span", "option-head");
      if (item.contact) {  // from the person's address books (the composer's completion)
        option.dataset.contact = item.contact;
        head.appendChild(element("span", "badge", item.contact_label));
      } else {
        head.appendChild(element("span", "kind kind-" + String(item.kind).toLowerCase(), item.kind));
      }
      head.appendChild(element("strong", "option-name", item.kind === "INS" ? item.address : item.name));
      if (item.paper) head.appendChild(element("span", "paper-badge paper-" + item.paper.state, item.paper.label));
      option.appendChild(head);
      if (item.kind !== "INS") {
        var details = [item.profession, item.structure, item.town].filter(Boolean).join(" · ");
        if (details) option.appendChild(element("span", "option-details", details));
        option.appendChild(element("span", "option-address", item.address));
      }
      option.addEventListener("mousedown", function (event) { event.preventDefault(); this.pick(index); }.bind(this));
      list.appendChild(option);
    }.bind(this));
    this.box.appendChild(list);
    this.setOpen(true);
  };

  Completion.prototype.setOpen = function (open) {
    this.input.setAttribute("aria-expanded", open ? "true" : "false");
    if (!open) this.input.removeAttribute("aria-activedescendant");
  };

  Completion.prototype.close = function () {
    this.box.textContent = "";
    this.announce("");
    this.items = [];
    this.active = -1;
    this.setOpen(false);
  };

  Completion.prototype.move = function (step) {
    if (!this.items.length) return;
    this.active = (this.active + step + this.items.length) % this.items.length;
    var options = this.box.querySelectorAll("[role=option]");
    options.forEach(function (option, index) {
      option.setAttribute("aria-selected", index === this.active ? "true" : "false");
    }.bind(this));
    this.input.setAttribute("aria-activedescendant", options[this.active].id);
    options[this.active].scrollIntoView({ block: "nearest" });
  };

  Completion.prototype.pick = function (index) {
    var item = this.items[index];
    if (!item) return;
    var parts = this.input.value.split(/[,;]/);
    parts[parts.length - 1] = " " + item.address;
    this.input.value = parts.map(function (p) { return p.trim(); }).filter(Boolean).join(", ") + ", ";
    this.close();
    this.input.focus();
    this.input.dispatchEvent(new Event("change", { bubbles: true }));
  };

  Completion.prototype.onKey = function (event) {
    var open = this.items.length > 0;
    if (event.key === "ArrowDown" && open) { event.preventDefault(); this.move(1); }
    else if (event.key === "ArrowUp" && open) { event.preventDefault(); this.move(-1); }
    // Enter picks the highlighted suggestion, and otherwise does nothing: in a recipient field it
    // never submits (and so never sends) the message, as in a desktop mail client.
    else if (event.key === "Enter" && open && this.active >= 0) { event.preventDefault(); this.pick(this.active); }
    else if (event.key === "Enter") { event.preventDefault(); }
    else if (event.key === "Escape" && open) { event.preventDefault(); this.close(); }
  };

  document.querySelectorAll("[data-directory-complete]").forEach(function (input) { new Completion(input); });

  /* --- search page: "/" to the search box, arrows through the results ------------------ */
  var searchForm = document.querySelector("[data-directory-search]");
  if (!searchForm) return;
  var box = searchForm.querySelector("input[name=q]");
  function resultLinks() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-results] .result-write"));
  }
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var target = event.target;
    var typing = target.tagName === "INPUT" || target.tagName === "SELECT" || target.tagName === "TEXTAREA";
    if (event.key === "/" && !typing) { event.preventDefault(); box.focus(); box.select(); return; }
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
    var links = resultLinks();
    if (!links.length || (typing && target !== box)) return;
    var index = links.indexOf(target);
    var next = event.key === "ArrowDown" ? index + 1 : index - 1;
    if (next < 0) { box.focus(); event.preventDefault(); return; }
    if (next >= links.length) return;
    event.preventDefault();
    links[next].focus();
  });
})();
