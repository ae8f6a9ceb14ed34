"""Thunderbird autoconfig and Outlook Autodiscover (issue 11 §4)."""

import xml.etree.ElementTree as ET

from clients.autoconfig import AUTODISCOVER_REQUEST, OUTLOOK_RESPONSE

REQUEST = f"""<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="{AUTODISCOVER_REQUEST}">
  <Request><EMailAddress>alice.martin@ch-troispics.mssante.fr</EMailAddress>
  <AcceptableResponseSchema>{OUTLOOK_RESPONSE}</AcceptableResponseSchema></Request>
</Autodiscover>"""


def test_thunderbird_config_from_settings(client, cast, settings, tls_files):
    settings.CLIENTS_TLS_CERT, settings.CLIENTS_TLS_KEY = tls_files
    settings.CLIENTS_PUBLIC_HOST = "mail.ch-troispics.fr"
    settings.CLIENTS_PUBLIC_IMAP_PORT, settings.CLIENTS_PUBLIC_IMAPS_PORT, settings.CLIENTS_PUBLIC_SUBMISSION_PORT = (
        143,
        993,
        587,
    )
    for url in (
        "/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=alice.martin@ch-troispics.mssante.fr",
        "/mail/config-v1.1.xml?emailaddress=alice.martin%40ch-troispics.mssante.fr",
    ):
        response = client.get(url)
        assert response.status_code == 200 and response["Content-Type"].startswith("application/xml")
        provider = ET.fromstring(response.content).find("emailProvider")
        assert [d.text for d in provider.findall("domain")] == ["ch-troispics.mssante.fr"]
        incoming = [(s.findtext("port"), s.findtext("socketType")) for s in provider.findall("incomingServer")]
        assert incoming == [("993", "SSL"), ("143", "STARTTLS")]
        assert {s.findtext("hostname") for s in provider.iter() if s.findtext("hostname")} == {"mail.ch-troispics.fr"}
        outgoing = provider.find("outgoingServer")
        assert (outgoing.findtext("port"), outgoing.findtext("socketType"), outgoing.findtext("username")) == (
            "587",
            "STARTTLS",
            "%EMAILADDRESS%",
        )
    assert client.get("/mail/config-v1.1.xml?emailaddress=x@ailleurs.mssante.fr").status_code == 404


def test_outlook_autodiscover(client, cast, settings, tls_files):
    settings.CLIENTS_TLS_CERT, settings.CLIENTS_TLS_KEY = tls_files
    settings.CLIENTS_PUBLIC_HOST = "mail.ch-troispics.fr"
    settings.CLIENTS_PUBLIC_IMAP_PORT, settings.CLIENTS_PUBLIC_SUBMISSION_PORT = 143, 587
    response = client.post("/autodiscover/autodiscover.xml", REQUEST, content_type="text/xml")
    assert response.status_code == 200
    ns = {"r": OUTLOOK_RESPONSE}
    protocols = ET.fromstring(response.content).findall("r:Response/r:Account/r:Protocol", ns)
    got = {
        p.findtext("r:Type", namespaces=ns): (
            p.findtext("r:Port", namespaces=ns),
            p.findtext("r:Encryption", namespaces=ns),
            p.findtext("r:LoginName", namespaces=ns),
        )
        for p in protocols
    }
    assert got == {
        "IMAP": ("143", "TLS", "alice.martin@ch-troispics.mssante.fr"),
        "SMTP": ("587", "TLS", "alice.martin@ch-troispics.mssante.fr"),
    }
    assert client.post("/Autodiscover/Autodiscover.xml", REQUEST, content_type="text/xml").status_code == 200
    entity = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "e">]><x>&e;</x>'
    assert client.post("/autodiscover/autodiscover.xml", entity, content_type="text/xml").status_code == 400
    other = REQUEST.replace("ch-troispics.mssante.fr", "ailleurs.mssante.fr")
    assert client.post("/autodiscover/autodiscover.xml", other, content_type="text/xml").status_code == 404
