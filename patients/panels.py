"""Sections that apps above `patients` add to the patient's inbox page (layer order: `patients`
imports none of them). An app connects a receiver to `inbox_panels`; the receiver gets the
request and the signed-in patient and returns the HTML of its section (rendered from its own
template, through its own access-checked fetches) or None. Today: the upcoming convocations of
`automation` (issue 9)."""

from django.dispatch import Signal

inbox_panels = Signal()


def panels_for(request, patient) -> list[str]:
    return [
        html
        for _receiver, html in inbox_panels.send(sender=patient.__class__, request=request, patient=patient)
        if html
    ]
