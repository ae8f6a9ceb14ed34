"""The demo data of `manage.py seed_demo`.

`demo_seeded` is sent once the operator's demo is loaded, so that apps above `mailboxes` add
their own demo (message models, a convocation…) without `mailboxes` importing them; each
receiver returns a line for the command's summary."""

from django.dispatch import Signal

demo_seeded = Signal()
