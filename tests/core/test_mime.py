"""Parsing real-world and malformed MIME: file names, depth, charsets, base64, HTML sanitising."""

import base64

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailboxes.mime import MalformedMessage, parse_message

NESTED = b"""From: =?utf-8?q?Dr_=C3=89lise_Roy?= <Elise.Roy@CH-Nord.mssante.fr>\r
To: "Martin, Alice" <alice.martin@ch-troispics.mssante.fr>, bob@ch-troispics.mssante.fr\r
Subject: =?iso-8859-1?q?R=E9sultats_d=27analyse?=\r
Message-ID: <n1@ch-nord.mssante.fr>\r
Auto-Submitted: auto-generated\r
MIME-Version: 1.0\r
Content-Type: multipart/mixed; boundary="outer"\r
\r
preamble\r
--outer\r
Content-Type: multipart/alternative; boundary="alt"\r
\r
--alt\r
Content-Type: text/plain; charset=iso-8859-1\r
Content-Transfer-Encoding: quoted-printable\r
\r
Bonjour, r=E9sultats ci-joints.\r
--alt\r
Content-Type: multipart/related; boundary="rel"\r
\r
--rel\r
Content-Type: text/html; charset=utf-8\r
\r
<p onclick="steal()">Bonjour<script>alert(1)</script> <a href="javascript:alert(2)">lien</a>\r
<img src="cid:logo@x" onerror="boom()"> <img src="https://tracker.example/p.gif"></p>\r
--rel\r
Content-Type: image/png\r
Content-ID: <logo@x>\r
Content-Transfer-Encoding: base64\r
\r
iVBORw0KGgoAAAANSUhEUg==\r
--rel--\r
--alt--\r
--outer\r
Content-Type: application/pdf\r
Content-Disposition: attachment; filename*=utf-8''compte%20rendu%20%C3%A9t%C3%A9.pdf\r
Content-Transfer-Encoding: base64\r
\r
JVBERi0xLjQgcmVwb3J0\r
--outer\r
Content-Type: application/octet-stream; name="=?utf-8?b?b3Jkb25uYW5jZV/DqS5wZGY=?="\r
Content-Disposition: attachment; filename="=?utf-8?b?b3Jkb25uYW5jZV/DqS5wZGY=?="\r
Content-Transfer-Encoding: base64\r
\r
JVBERi0xLjQgb3Jkbw==\r
--outer\r
Content-Type: application/pdf\r
Content-Disposition: attachment;\r
 filename*0*=utf-8''r%C3%A9sum%C3%A9%20;\r
 filename*1="long.pdf"\r
\r
%PDF-1.4 raw 8bit\r
--outer--\r
epilogue\r
"""


def test_nested_multiparts_file_names_and_bodies():
    parsed = parse_message(NESTED)
    assert parsed.from_address == "Elise.Roy@ch-nord.mssante.fr" and parsed.from_name == "Dr Élise Roy"
    assert parsed.to == [
        {"address": "alice.martin@ch-troispics.mssante.fr", "name": "Martin, Alice"},
        {"address": "bob@ch-troispics.mssante.fr", "name": ""},
    ]
    assert parsed.subject == "Résultats d'analyse"
    assert parsed.text_body == "Bonjour, résultats ci-joints."
    assert parsed.auto_submitted and not parsed.is_report
    names = [(a.filename, a.content_type, a.data) for a in parsed.attachments]
    assert names == [
        ("piece-jointe", "image/png", base64.b64decode("iVBORw0KGgoAAAANSUhEUg==")),
        ("compte rendu été.pdf", "application/pdf", b"%PDF-1.4 report"),
        ("ordonnance_é.pdf", "application/octet-stream", b"%PDF-1.4 ordo"),
        ("résumé long.pdf", "application/pdf", b"%PDF-1.4 raw 8bit"),
    ]
    logo = parsed.attachments[0]
    assert logo.content_id == "logo@x" and logo.is_inline
    assert not parsed.attachments[1].is_inline


def test_html_is_sanitised_and_remote_images_kept_for_the_webmail_to_block():
    html = parse_message(NESTED).html_body
    assert "<script" not in html and "alert(1)" not in html
    assert "onclick" not in html and "onerror" not in html and "javascript:" not in html
    assert 'src="cid:logo@x"' in html
    assert 'src="https://tracker.example/p.gif"' in html


def test_bad_charset_broken_base64_and_missing_closing_boundary_do_not_crash():
    raw = (
        b"From: a@b.mssante.fr\r\nSubject: =?x-unknown-charset?q?caf=E9?=\r\n"
        b'Content-Type: multipart/mixed; boundary="z"\r\n\r\n'
        b"--z\r\nContent-Type: text/plain; charset=klingon-8\r\n\r\ncaf\xe9 \xff\r\n"
        b"--z\r\nContent-Type: application/pdf; name=x.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"JVBERi0x!!!LjQ=====garbage\r\n"
        b"--z\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename*=klingon''%FF%FE.txt\r\n\r\nno end"
    )
    parsed = parse_message(raw)
    assert parsed.text_body.startswith("caf")
    assert parsed.subject  # kept, undecoded
    assert [a.filename for a in parsed.attachments][0] == "x.pdf"
    assert parsed.attachments[0].data.startswith(b"%PDF-1")
    assert parsed.attachments[1].data == b"no end"


def test_deep_nesting_is_bounded():
    depth = 200
    raw = b"From: a@b.mssante.fr\r\nSubject: deep\r\n"
    for level in range(depth):
        raw += f'Content-Type: multipart/mixed; boundary="b{level}"\r\n\r\n--b{level}\r\n'.encode()
    raw += b"Content-Type: text/plain\r\n\r\nfond\r\n"
    parsed = parse_message(raw)
    assert parsed.subject == "deep"
    assert len(parsed.attachments) <= 1


def test_report_fields_are_read():
    raw = (
        b"From: <mailer-daemon@x.mssante.fr>\r\nContent-Type: multipart/report; report-type=disposition-notification;"
        b' boundary="r"\r\n\r\n--r\r\nContent-Type: text/plain\r\n\r\nlu\r\n--r\r\n'
        b"Content-Type: message/disposition-notification\r\n\r\nOriginal-Message-ID: <o@x>\r\n"
        b"Final-Recipient: rfc822;a@x.mssante.fr\r\nDisposition: automatic-action/MDN-sent-automatically; displayed\r\n"
        b"--r--\r\n"
    )
    parsed = parse_message(raw)
    assert parsed.is_report and parsed.report_type == "disposition-notification"
    assert parsed.report_fields["original-message-id"] == "<o@x>"
    assert parsed.attachments == []


def test_bytes_that_are_no_message_at_all_are_refused_cleanly():
    for raw in (b"", b"   \r\n", b"just some text without any header line"):
        try:
            parse_message(raw)
        except MalformedMessage:
            continue
        raise AssertionError(f"{raw!r} was accepted")


MIME_PIECES = st.sampled_from(
    [
        b"From: a@b.mssante.fr\r\n",
        b"Subject: =?utf-8?b?w6k=?=\r\n",
        b"Subject: =?bogus?q?=ZZ?=\r\n",
        b'Content-Type: multipart/mixed; boundary="q"\r\n',
        b"Content-Type: multipart/alternative; boundary=\r\n",
        b"Content-Type: text/plain; charset=nope\r\n",
        b"Content-Transfer-Encoding: base64\r\n",
        b"Content-Transfer-Encoding: quoted-printable\r\n",
        b"Content-Disposition: attachment; filename*=utf-8''%E9%ZZ\r\n",
        b"Content-Disposition: attachment; filename*0*=x''a; filename*2=b\r\n",
        b'To: <<<@>>>, "unterminated\r\n',
        b"Date: not a date\r\n",
        b"References: <a@b> <<c>\r\n",
        b"\r\n",
        b"--q\r\n",
        b"--q--\r\n",
        b"=?utf-8?q?=C3?=\r\n",
        b"AAAA====\r\n",
        b"\xff\xfe\x00\r\n",
        b"message/rfc822\r\n",
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(MIME_PIECES, st.binary(max_size=40)), max_size=30))
def test_parser_never_raises_anything_but_malformed_message(pieces):
    raw = b"".join(pieces)
    try:
        parsed = parse_message(raw)
    except MalformedMessage:
        return
    for attachment in parsed.attachments:
        assert isinstance(attachment.data, bytes)
    assert isinstance(parsed.text_body, str) and isinstance(parsed.html_body, str)
