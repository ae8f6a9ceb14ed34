"""How a time of day reads on every page, in French: "9 h 30", as in the messages the product
writes (convocations, reminders: `automation.fields.appointment_values`), not "09:30".

Django reads this module before its own `fr` formats (settings.FORMAT_MODULE_PATH); a name not
set here keeps Django's value. Only the output formats change: the INPUT formats (what forms,
the admin's date and time widgets and `<input type=time>` values read and write, "09:30") stay
Django's, and machine formats (ICS, e-mail headers, API JSON, CSV for spreadsheets, logs) never
go through these names.

Templates use the names (`|time`, `|date:"DATETIME_FORMAT"`, `|date:"SHORT_DATETIME_FORMAT"`),
Python `django.utils.formats.time_format` / `date_format`; `mailboxes.templatetags.mss_format`
builds its list and long forms on them.
"""

# "9 h 30", "14 h 05": no leading zero on the hour, two digits for the minutes.
TIME_FORMAT = r"G \h i"
# "29 novembre 2026 à 9 h 30"
DATETIME_FORMAT = r"j F Y \à G \h i"
# "29/11/2026 à 9 h 30"
SHORT_DATETIME_FORMAT = r"d/m/Y \à G \h i"
