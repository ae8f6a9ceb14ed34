"""Template helpers the professional webmail uses for the patient side (RULES.md §3)."""

from django import template

from patients import conversation as conversation_module
from patients import display

register = template.Library()


@register.simple_tag
def delivery_states(message):
    """`{% delivery_states message as states %}` then include `patients/_delivery_states.html`."""
    return conversation_module.delivery_states(message)


@register.filter
def patient_label(address):
    """`{{ address|patient_label }}`: a patient's address with their first and last names."""
    return display.patient_label(address)
