"""The professional webmail in Chromium: compose with an attachment (file input and drag and
drop), reply threading through the keyboard shortcut, search, claim/assign/done on a shared box,
and a hostile HTML body that runs no script and loads nothing remote."""

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mailboxes import compose
from mailboxes.models import Entry, Message

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def referral(cast, **kwargs):
    result = compose.send_from_mailbox(
        cast.charlie_box,
        cast.charlie,
        to=[cast.cardio.address],
        subject=kwargs.pop("subject", "Adressage de M. Lambert"),
        text="Chère consœur,\nje vous adresse M. Lambert pour une échographie.\n",
        **kwargs,
    )
    return Entry.objects.get(mailbox=cast.cardio, message=result.message)


def test_compose_with_attachments_by_input_and_drop(cast, login, live_server, tmp_path):
    page = login("alice")
    page.click("text=Écrire")
    page.wait_for_url(re.compile(r"/pro/ecrire/"))
    page.fill("#id_to", cast.charlie_box.address)
    page.fill("#id_subject", "Compte rendu d'échographie")
    page.fill("#body-editor", "Bonjour,\nci-joint le compte rendu.")
    report = tmp_path / "compte-rendu.pdf"
    report.write_bytes(b"%PDF-1.4\n% compte rendu\n" + b"0" * 3000)
    page.set_input_files("#id_attachments", str(report))
    page.evaluate(
        """() => {
            const dt = new DataTransfer();
            dt.items.add(new File(["ordonnance"], "ordonnance.txt", {type: "text/plain"}));
            const zone = document.querySelector("[data-dropzone]");
            zone.dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
        }"""
    )
    assert "compte-rendu.pdf" in page.inner_text("[data-file-list]")
    assert "ordonnance.txt" in page.inner_text("[data-file-list]")
    assert "Taille estimée une fois encodé" in page.inner_text("[data-size-estimate]")
    page.click("[data-send]")
    page.wait_for_url(re.compile(r"/pro/message/\d+/$"))
    assert "Message envoyé." in page.inner_text(".flash")
    message = Message.objects.get(subject="Compte rendu d'échographie")
    assert sorted(message.attachments.values_list("filename", flat=True)) == ["compte-rendu.pdf", "ordonnance.txt"]
    assert Entry.objects.filter(mailbox=cast.charlie_box, message=message).exists()


def test_draft_keeps_its_attachment_autosaved_and_reopened(cast, login, live_server, tmp_path):
    page = login("alice")
    page.goto(f"{live_server.url}/pro/ecrire/?bal={cast.alice_box.pk}")
    page.fill("#id_to", cast.charlie_box.address)
    page.fill("#id_subject", "Convocation au staff")
    unsaved = """() => {
        const event = new Event("beforeunload", {cancelable: true});
        window.dispatchEvent(event);
        return event.defaultPrevented;
    }"""
    assert page.evaluate(unsaved)  # typed text not saved yet: leaving asks first
    convocation = tmp_path / "convocation.pdf"
    convocation.write_bytes(b"%PDF-1.4\n% convocation\n" + b"1" * 3000)
    page.set_input_files("#id_attachments", str(convocation))
    # The automatic save posts the changed file list once; the file then belongs to the draft.
    page.evaluate("() => document.getElementById('compose-form').saveDraftNow()")
    page.locator("[data-draft-status]", has_text="Brouillon enregistré").wait_for()
    assert page.inner_text("[data-file-list]") == ""
    assert "conserver convocation.pdf" in page.inner_text("[data-kept-attachments]")
    assert not page.evaluate(unsaved)
    draft = Entry.objects.get(mailbox=cast.alice_box, is_draft=True)
    assert list(draft.message.attachments.values_list("filename", flat=True)) == ["convocation.pdf"]
    # Explicit save, then the draft reopens with its file ticked; sending carries it.
    page.fill("#body-editor", "Bonjour,\nvoici la convocation.")
    page.click("[data-save-draft]")
    page.wait_for_url(re.compile(rf"/pro/ecrire/\?brouillon={draft.pk}$"))
    kept = page.get_by_label(re.compile("conserver convocation.pdf"))
    assert kept.is_checked()
    assert page.inner_text("#body-editor") == "Bonjour,\nvoici la convocation."
    page.click("[data-send]")
    page.wait_for_url(re.compile(r"/pro/message/\d+/$"))
    message = Message.objects.get(subject="Convocation au staff", sender_mailbox=cast.alice_box)
    assert list(message.attachments.values_list("filename", flat=True)) == ["convocation.pdf"]
    assert not Entry.objects.filter(pk=draft.pk).exists()


def test_unticked_draft_attachment_leaves_the_draft(cast, login, live_server, tmp_path):
    page = login("alice")
    page.goto(f"{live_server.url}/pro/ecrire/?bal={cast.alice_box.pk}")
    page.fill("#id_subject", "Brouillon avec PJ")
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(b"%PDF-1.4\n% scan\n")
    page.set_input_files("#id_attachments", str(scan))
    page.click("[data-save-draft]")
    page.wait_for_url(re.compile(r"/pro/ecrire/\?brouillon=\d+$"))
    draft = Entry.objects.get(mailbox=cast.alice_box, is_draft=True)
    page.get_by_label(re.compile("conserver scan.pdf")).uncheck()
    page.evaluate("() => document.getElementById('compose-form').saveDraftNow()")
    page.locator("[data-draft-status]", has_text="Brouillon enregistré").wait_for()
    assert page.locator("[data-kept-attachments]").is_hidden()
    assert not draft.message.attachments.exists()


def test_size_over_the_limit_is_explained_before_sending(cast, login, live_server, tmp_path):
    from mailboxes.models import Mailbox

    Mailbox.objects.filter(pk=cast.alice_box.pk).update(max_message_bytes=8000)
    page = login("alice")
    page.goto(f"{live_server.url}/pro/ecrire/?bal={cast.alice_box.pk}")
    page.fill("#id_to", cast.charlie_box.address)
    big = tmp_path / "scanner.pdf"
    big.write_bytes(b"%PDF" + b"1" * 9000)
    page.set_input_files("#id_attachments", str(big))
    page.click("[data-send]")
    errors = page.locator("#compose-errors")
    errors.wait_for()
    assert "Une fois encodé pour l'envoi, le message pèserait" in errors.inner_text()
    assert not Message.objects.filter(sender_mailbox=cast.alice_box).exists()


def test_reply_by_keyboard_is_threaded(cast, login, live_server):
    original = referral(cast)
    page = login("bob")
    page.goto(f"{live_server.url}/pro/message/{original.pk}/")
    page.keyboard.press("r")
    page.wait_for_url(re.compile(r"/pro/ecrire/\?reponse="))
    assert page.input_value("#id_to") == cast.charlie_box.address
    assert page.input_value("#id_subject") == "RE : Adressage de M. Lambert"
    page.click("[data-send]")
    page.wait_for_url(re.compile(r"/pro/message/\d+/$"))
    reply = Message.objects.get(subject="RE : Adressage de M. Lambert")
    assert reply.in_reply_to == original.message.message_id
    assert reply.thread_key == original.message.thread_key
    # Charlie sees both in one conversation.
    page.context.clear_cookies()
    page = login("charlie")
    inbox_entry = Entry.objects.get(mailbox=cast.charlie_box, message=reply)
    page.goto(f"{live_server.url}/pro/message/{inbox_entry.pk}/")
    assert "Dans la même conversation" in page.inner_text("main")


def test_search_with_the_slash_shortcut(cast, login, live_server):
    referral(cast)
    referral(cast, subject="Planning de décembre")
    from webmail.tasks import index_search_task

    index_search_task()  # what the scheduler runs every few seconds (issue 17)
    page = login("bob")
    page.goto(f"{live_server.url}/pro/bal/{cast.cardio.pk}/")
    page.keyboard.press("/")
    page.keyboard.type("échographie")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/recherche/"))
    rows = page.locator("[data-message-list] tbody tr")
    assert rows.count() == 2
    page.fill("#id_q", "Planning")
    page.click("form[role=search] button[type=submit]")
    page.wait_for_url(lambda url: "r=" in url and "Planning" not in url)  # terms stay out of URLs
    page.wait_for_load_state()
    assert page.locator("[data-message-list] tbody tr").count() == 1


def test_claim_assign_done(cast, login, live_server):
    entry = referral(cast)
    page = login("bob")
    page.goto(f"{live_server.url}/pro/message/{entry.pk}/")
    page.click(".sharing >> text=Je m'en occupe")  # the list's bulk bar has one too
    page.wait_for_load_state()
    assert "Attribué à Bob Leroy" in page.inner_text("[data-testid=assignment]")
    page.select_option("#assignee", label="Alice Martin")
    page.click("button:has-text('Attribuer')")
    page.wait_for_load_state()
    assert "Attribué à Alice Martin" in page.inner_text("[data-testid=assignment]")
    page.click("text=Marquer comme traité")
    page.wait_for_load_state()
    assert "traité par Bob Leroy" in page.inner_text("[data-testid=assignment]")
    page.context.clear_cookies()
    page = login("alice")
    page.goto(f"{live_server.url}/pro/message/{entry.pk}/")
    assert "Bob Leroy" in page.inner_text(".sharing")  # who read it


class _Recorder(BaseHTTPRequestHandler):
    hits: list = []

    def do_GET(self):  # noqa: N802
        self.hits.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def remote():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    _Recorder.hits = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder.hits
    server.shutdown()


def test_hostile_html_runs_no_script_and_loads_nothing_remote(cast, login, live_server, remote):
    base, hits = remote
    hostile = (
        f'<p id="hello">Bonjour</p><script>fetch("{base}/script-ran")</script>'
        f'<img src="{base}/pixel.png" onerror="fetch(\'{base}/onerror-ran\')">'
        f'<div style="background:url({base}/css.png)">fond</div>'
        f"<a href=\"javascript:fetch('{base}/js-link')\">clic</a>"
        f'<iframe src="{base}/frame"></iframe><form action="{base}/form"><button>go</button></form>'
    )
    # Once through the real path (sanitised by the core), once stored raw: the frame must hold
    # even if a sanitiser let something through.
    sanitised = compose.send_from_mailbox(
        cast.charlie_box, cast.charlie, to=[cast.alice_box.address], subject="HTML nettoyé", text="x", html=hostile
    ).message
    raw_copy = compose.send_from_mailbox(
        cast.charlie_box, cast.charlie, to=[cast.alice_box.address], subject="HTML brut", text="x", html="<p>x</p>"
    ).message
    Message.objects.filter(pk=raw_copy.pk).update(html_body=hostile)

    page = login("alice")
    finished, failed, console = [], [], []
    # Chromium announces a request before CSP blocks it: what counts is whether one completed.
    page.on("requestfinished", lambda r: finished.append(r.url))
    page.on("requestfailed", lambda r: failed.append((r.url, r.failure)))
    page.on("console", lambda m: console.append(m.text))
    for message in (sanitised, raw_copy):
        entry = Entry.objects.get(mailbox=cast.alice_box, message=message)
        page.goto(f"{live_server.url}/pro/message/{entry.pk}/")
        frame = page.frame_locator("iframe.message-body")
        frame.locator("p", has_text="Bonjour").first.wait_for()
        # Every request the page and its frame start is over (Chromium's own record of the
        # network), rather than a fixed wait: whatever the body tried to load has been tried.
        page.wait_for_load_state("networkidle")
        links = frame.locator("a")
        if links.count():
            links.first.click()
            page.wait_for_load_state("networkidle")
    assert hits == []
    assert not [url for url in finished if url.startswith(base)]
    assert all("csp" in (failure or "").lower() for url, failure in failed if url.startswith(base))
    assert any("Blocked script execution" in line or "Content Security Policy" in line for line in console)
