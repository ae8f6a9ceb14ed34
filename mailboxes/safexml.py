"""Parsing XML received from outside (white list, CDA documents) with defusedxml: no DTD, no
entity declaration, no external resource."""

import xml.etree.ElementTree as ET  # noqa: S405 - only the types; parsing is defusedxml's

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring


class UnsafeXML(ValueError):
    pass


def parse(data: bytes) -> ET.Element:
    """The root element; UnsafeXML for a DTD or entity declaration, ET.ParseError when malformed."""
    try:
        return fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        raise UnsafeXML("le document déclare une DTD ou des entités, ce qui est refusé") from None
