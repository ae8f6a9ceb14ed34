"""Formatted writing in Chromium (issue 16 item 18): bold, a bulleted list and a link typed with the
toolbar and the keyboard arrive as multipart/alternative with a cleaned HTML part and a readable
text part; text pasted from Word keeps its words and loses its styles, classes and scripts."""

import re
from email import policy
from email.parser import BytesParser

import pytest

from mailboxes.models import Mailbox, Message
from mailboxes.store import read_raw

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

WORD_CLIPBOARD = (
    '<html xmlns:o="urn:schemas-microsoft-com:office:office"><head><style>p.MsoNormal{color:red}</style></head>'
    '<body><!--StartFragment--><p class="MsoNormal" style="margin:0cm;font-family:Calibri;color:#C00000">'
    '<span style="font-size:14pt">Texte collé depuis Word</span><o:p></o:p></p>'
    "<script>window.pasted = true</script><!--EndFragment--></body></html>"
)

PASTE = """([html, text]) => {
    const editor = document.getElementById("body-editor");
    editor.focus();
    const data = new DataTransfer();
    data.setData("text/html", html);
    data.setData("text/plain", text);
    editor.dispatchEvent(new ClipboardEvent("paste", {clipboardData: data, bubbles: true, cancelable: true}));
    return editor.innerHTML;
}"""


@pytest.mark.parametrize("width", [1366, 375])
def test_bold_list_link_and_word_paste_arrive_as_clean_html_and_text(cast, login, live_server, page, width):
    Mailbox.objects.filter(pk=cast.alice_box.pk).update(signature="Dr Alice MARTIN\nCardiologie")
    Mailbox.objects.filter(pk=cast.cardio.pk).update(signature="Secrétariat de cardiologie")
    page.set_viewport_size({"width": width, "height": 768 if width == 1366 else 812})
    login("alice")
    page.goto(f"{live_server.url}/pro/ecrire/?bal={cast.alice_box.pk}")
    assert page.locator("#id_body").is_hidden()  # the editor replaces the textarea
    # The signature follows a change of sending box, inside the editor too.
    assert "Dr Alice MARTIN\nCardiologie" in page.inner_text("#body-editor")
    page.select_option("#id_sender", str(cast.cardio.pk))
    assert "Secrétariat de cardiologie" in page.inner_text("#body-editor")
    assert "Dr Alice MARTIN" not in page.inner_text("#body-editor")
    page.select_option("#id_sender", str(cast.alice_box.pk))
    page.fill("#id_to", cast.charlie_box.address)
    page.fill("#id_subject", "Avis mis en forme")
    editor = page.locator("#body-editor")
    editor.click()
    page.keyboard.press("Control+Home")
    page.keyboard.type("Bonjour ")
    page.click("button[aria-label=Gras]")
    assert page.get_attribute("button[aria-label=Gras]", "aria-pressed") == "true"
    page.keyboard.type("Dr Durand")
    page.keyboard.press("Control+B")
    page.keyboard.type(",")
    page.keyboard.press("Enter")
    page.click("button[aria-label='Liste à puces']")
    page.keyboard.type("ECG normal")
    page.keyboard.press("Enter")
    page.keyboard.type("Écho à prévoir")
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")  # an empty item ends the list
    page.keyboard.type("Recommandations : ")
    page.click("button[aria-label='Insérer un lien']")
    page.fill("#editor-link-url", "javascript:alert(1)")
    page.click("text=Insérer le lien")
    assert "Saisissez une adresse web" in page.inner_text(".editor-link-row")
    page.fill("#editor-link-url", "www.has-sante.fr/fiche")
    page.keyboard.press("Enter")
    page.keyboard.press("End")
    page.keyboard.press("Enter")
    pasted = page.evaluate(PASTE, [WORD_CLIPBOARD, "Texte collé depuis Word"])
    assert "Texte collé depuis Word" in pasted
    for dropped in ("style", "class", "Mso", "script", "<span", "o:p", "<!--"):
        assert dropped not in pasted, dropped
    assert page.evaluate("() => window.pasted") is None
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")

    page.click("[data-send]")
    page.wait_for_url(re.compile(r"/pro/message/\d+/$"))
    message = Message.objects.get(subject="Avis mis en forme")
    parsed = BytesParser(policy=policy.default).parsebytes(read_raw(message))
    assert parsed.get_content_type() == "multipart/alternative"
    parts = {p.get_content_type(): p.get_content() for p in parsed.walk() if not p.is_multipart()}
    html, text = parts["text/html"], parts["text/plain"]
    assert re.search(r"<b>Dr Durand</b>", html)
    assert re.search(r"<ul><li>ECG normal</li><li>Écho à prévoir</li></ul>", html)
    assert 'href="https://www.has-sante.fr/fiche"' in html
    assert "javascript" not in html and "style=" not in html and "class=" not in html
    assert text.splitlines()[:3] == ["Bonjour Dr Durand,", "- ECG normal", "- Écho à prévoir"]
    assert "Recommandations : https://www.has-sante.fr/fiche" in text
    assert "Texte collé depuis Word" in text
    assert text.replace("\r\n", "\n").rstrip().endswith("\n-- \nDr Alice MARTIN\nCardiologie")
