"""Parsing XML received from outside (white list, CDA documents) without DTDs or entities."""

import xml.etree.ElementTree as ET
from xml.parsers import expat


class UnsafeXML(ValueError):
    pass


def _forbid(*_args, **_kwargs):
    raise UnsafeXML("le document déclare une DTD ou des entités, ce qui est refusé")


def parse(data: bytes) -> ET.Element:
    """The root element; UnsafeXML for a DTD or entity declaration, ET.ParseError when malformed.

    A first pass with bare expat refuses any DTD or entity declaration before ElementTree sees
    the document (no entity expansion, no external resource)."""
    guard = expat.ParserCreate()
    guard.StartDoctypeDeclHandler = _forbid
    guard.EntityDeclHandler = _forbid
    guard.UnparsedEntityDeclHandler = _forbid
    guard.ExternalEntityRefHandler = _forbid
    try:
        guard.Parse(data, True)
    except expat.ExpatError as exc:
        raise ET.ParseError(str(exc)) from None
    return ET.fromstring(data)  # noqa: S314 - checked above: no DTD, no entity
