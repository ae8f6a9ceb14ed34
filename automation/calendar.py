"""The `.ics` invitation of a convocation (issue 9 item 3; RFC 5545 and RFC 5546 iTIP), built
with the `icalendar` library.

- `METHOD:REQUEST` for the convocation and each reschedule, `METHOD:CANCEL` when cancelled;
  `PUBLISH` for the patient's own "add to my calendar" download (a copy for their agenda, not
  an invitation to answer);
- one stable `UID` per convocation (`<uuid>@<sending domain>`), a `SEQUENCE` raised on each
  reschedule and on cancellation, so a calendar updates the event instead of adding one;
- times in Europe/Paris with its VTIMEZONE, written with the yearly EU rules (last Sunday of
  March and October) as phone and desktop calendars emit it themselves.
"""

from __future__ import annotations

import datetime
import functools
from zoneinfo import ZoneInfo

import icalendar
from django.utils import timezone

PARIS = "Europe/Paris"
PRODID = "-//MSSante//Convocations//FR"


@functools.cache
def paris_timezone() -> icalendar.Timezone:
    """Built once per process (the same component goes into every calendar object)."""
    tz = icalendar.Timezone()
    tz.add("tzid", PARIS)
    tz.add("x-lic-location", PARIS)
    daylight = icalendar.TimezoneDaylight()
    daylight.add("tzname", "CEST")
    daylight.add("tzoffsetfrom", datetime.timedelta(hours=1))
    daylight.add("tzoffsetto", datetime.timedelta(hours=2))
    daylight.add("dtstart", datetime.datetime(1970, 3, 29, 2, 0, 0))
    daylight.add("rrule", {"freq": "yearly", "bymonth": 3, "byday": "-1su"})
    standard = icalendar.TimezoneStandard()
    standard.add("tzname", "CET")
    standard.add("tzoffsetfrom", datetime.timedelta(hours=2))
    standard.add("tzoffsetto", datetime.timedelta(hours=1))
    standard.add("dtstart", datetime.datetime(1970, 10, 25, 3, 0, 0))
    standard.add("rrule", {"freq": "yearly", "bymonth": 10, "byday": "-1su"})
    tz.add_component(daylight)
    tz.add_component(standard)
    return tz


@functools.cache
def paris_timezone_ical() -> bytes:
    """`paris_timezone()` serialised, once per process: it is the same in every calendar object
    and its serialisation (two rules) cost more than the event's."""
    return paris_timezone().to_ical()


def uid_of(convocation) -> str:
    return f"{convocation.uid}@{convocation.mailbox.domain_name}"


def build_ics(convocation, *, method: str = "REQUEST", summary: str = "", description: str = "") -> bytes:
    """The calendar object of `convocation` for `method` (REQUEST, CANCEL or PUBLISH)."""
    paris = ZoneInfo(PARIS)
    starts = timezone.localtime(convocation.starts_at, paris).replace(tzinfo=paris)
    ends = starts + datetime.timedelta(minutes=convocation.duration_minutes or 30)
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", method)

    event = icalendar.Event()
    event.add("uid", uid_of(convocation))
    event.add("sequence", convocation.sequence)
    event.add("dtstamp", timezone.now().astimezone(datetime.UTC))
    event.add("dtstart", starts)
    event.add("dtend", ends)
    event.add("summary", summary or _summary(convocation))
    location = ", ".join(p for p in (convocation.place, _structure_address(convocation)) if p)
    if location:
        event.add("location", location)
    if description:
        event.add("description", description)
    box = convocation.mailbox
    organizer = icalendar.vCalAddress(f"mailto:{box.address}")
    organizer.params["cn"] = icalendar.vText(box.display_name or box.address)
    event.add("organizer", organizer)
    attendee = icalendar.vCalAddress(f"mailto:{convocation.patient.address}")
    attendee.params["cn"] = icalendar.vText(convocation.patient.display_name)
    attendee.params["role"] = icalendar.vText("REQ-PARTICIPANT")
    event.add("attendee", attendee)
    if method == "CANCEL":
        event.add("status", "CANCELLED")
    else:
        event.add("status", "CONFIRMED")
        alarm = icalendar.Alarm()  # the phone's own reminder, the day before
        alarm.add("action", "DISPLAY")
        alarm.add("description", event["summary"])
        alarm.add("trigger", -datetime.timedelta(days=1))
        event.add_component(alarm)
    calendar.add_component(event)
    # The VTIMEZONE goes before the event, as `calendar.add_component(paris_timezone())` would
    # put it, from the bytes serialised once.
    begin_event = b"BEGIN:VEVENT\r\n"
    return serialised(calendar).replace(begin_event, paris_timezone_ical() + begin_event, 1)


# RFC 5545 §3.1: a content line of this many octets or more is folded (icalendar's own rule).
FOLD_AT = 75


def serialised(component: icalendar.Component) -> bytes:
    """`component.to_ical()`, byte for byte, from the same public pieces (`content_lines()`),
    with each line folded by `fold` instead of the library's per-character loop (about 10 % of
    a campaign worker's CPU, bench/RESULTS.md issue 9). Tests hold both outputs equal."""
    return b"".join(fold(line).encode("utf-8") + b"\r\n" for line in component.content_lines() if line)


def fold(line: str) -> str:
    """RFC 5545 §3.1 folding as icalendar does it (`Contentline.to_ical`): a physical line holds
    at most FOLD_AT - 1 octets of content, continuation lines start with a space, a character is
    never cut, and an escape character (`\\` or `^`) that would end a piece moves to the next."""
    if len(line) < FOLD_AT and (line.isascii() or len(line.encode("utf-8")) < FOLD_AT):
        return line
    widths = [1] * len(line) if line.isascii() else [len(c.encode("utf-8")) for c in line]
    pieces, start, count = [], 0, 0
    for index, width in enumerate(widths):
        if index > start and count + width >= FOLD_AT:
            if index - start > 1 and line[index - 1] in "\\^":
                pieces.append(line[start : index - 1])
                start, count = index - 1, widths[index - 1]
            else:
                pieces.append(line[start:index])
                start, count = index, 0
        count += width
    pieces.append(line[start:])
    return "\r\n ".join(pieces)


def _summary(convocation) -> str:
    service = convocation.service or convocation.model.service
    structure = convocation.mailbox.structure.name if convocation.mailbox.structure_id else ""
    return " — ".join(p for p in (f"Rendez-vous {service}".strip(), structure) if p)


def _structure_address(convocation) -> str:
    structure = convocation.mailbox.structure if convocation.mailbox.structure_id else None
    return " ".join((structure.address or "").split()) if structure else ""


def attachment(convocation, method: str = "REQUEST", **kwargs) -> tuple[str, str, bytes]:
    """(filename, content type, bytes) for a message: `text/calendar` with its charset and
    method (RFC 6047), which mail clients read to offer the invitation."""
    name = "annulation.ics" if method == "CANCEL" else "invitation.ics"
    return name, f"text/calendar; charset=utf-8; method={method}", build_ics(convocation, method=method, **kwargs)
