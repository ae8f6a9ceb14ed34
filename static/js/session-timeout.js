/* Inactivity timeout (issue 15 item 22): warn before the session ends, let the person stay,
   and have the composer save its draft before the end so nothing written is lost.
   The server ends an idle session on its own (accounts.middleware.InactivityTimeoutMiddleware);
   this script makes it visible and, when the page stays open, signs out at the end itself. The
   last activity is shared between tabs (localStorage), so a busy tab keeps the others alive. */
(function () {
  "use strict";
  var body = document.body;
  var timeout = Number(body.dataset.sessionTimeout || 0) * 1000;
  if (!timeout) return;
  var warning = Number(body.dataset.sessionWarning || 120) * 1000;
  var box = document.getElementById("session-warning");
  var countdown = box.querySelector("[data-session-countdown]");
  var stay = box.querySelector("[data-session-stay]");
  var KEY = "mss-last-activity";
  var timer = null;
  var ticking = null;

  function last() {
    var shared = Number(window.localStorage.getItem(KEY) || 0);
    return Math.max(shared, lastHere);
  }
  var lastHere = Date.now();

  function touch() {
    lastHere = Date.now();
    try { window.localStorage.setItem(KEY, String(lastHere)); } catch (e) { /* private mode */ }
    hide();
    plan();
  }

  function saveDraft() {
    var form = document.querySelector("form[data-draft-url]");
    if (form && form.saveDraftNow) form.saveDraftNow();
  }

  function hide() {
    box.hidden = true;
    if (ticking) { window.clearInterval(ticking); ticking = null; }
  }

  function show() {
    if (!box.hidden) return;
    saveDraft();
    box.hidden = false;
    stay.focus();
    ticking = window.setInterval(render, 1000);
    render();
  }

  function render() {
    var left = Math.max(0, Math.round((last() + timeout - Date.now()) / 1000));
    var minutes = Math.floor(left / 60);
    countdown.textContent = minutes ? minutes + " min " + String(left % 60).padStart(2, "0") + " s" : left + " s";
  }

  function check() {
    var idle = Date.now() - last();
    if (idle >= timeout - 2000) {
      saveDraft();
      // Leave the draft request a moment, then sign out (the server would refuse the next page anyway).
      window.setTimeout(function () { box.querySelector("[data-session-expired-form]").submit(); }, 1500);
      return;
    }
    if (idle >= timeout - warning) show(); else hide();
    plan();
  }

  function plan() {
    if (timer) window.clearTimeout(timer);
    var idle = Date.now() - last();
    var next = idle < timeout - warning ? timeout - warning - idle : Math.min(1000, timeout - 2000 - idle);
    timer = window.setTimeout(check, Math.max(200, next));
  }

  var lastPing = Date.now();
  function keepAlive() {
    var token = box.querySelector("input[name=csrfmiddlewaretoken]").value;
    lastPing = Date.now();
    return fetch(body.dataset.sessionKeepalive, { method: "POST", headers: { "X-CSRFToken": token }, credentials: "same-origin" })
      .then(function (response) { if (response.ok) touch(); });
  }
  stay.addEventListener("click", keepAlive);
  // Typing, clicking or scrolling is activity: tell the server now and then (a long reading
  // or writing without any request would otherwise end the session under the person's eyes).
  ["keydown", "pointerdown", "wheel", "input"].forEach(function (name) {
    document.addEventListener(name, function (event) {
      if (event.target === stay || !box.hidden) return;
      if (Date.now() - lastPing > 60000) keepAlive(); else touch();
    }, { passive: true, capture: true });
  });
  // Any request the page makes is activity for the server: count it here too.
  document.addEventListener("htmx:afterRequest", touch);
  window.addEventListener("storage", function (event) { if (event.key === KEY) { hide(); plan(); } });
  touch();
})();
