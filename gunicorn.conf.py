"""gunicorn's settings for the product (docs/configuration.md#production): gunicorn reads this
file from the directory it starts in, or where `-c` names it.

gunicorn's own lines and its access log go through the product's LOGGING (mssante/settings.py):
the request id on each line, `LOG_FORMAT`'s plain or JSON lines, and the masking of patient
addresses and INS (operations/observability.py `RedactFilter`), since an access line prints the
request's path.

gunicorn (25.1 and later) also opens a control socket for `gunicornc`, by default at one path per
user ($XDG_RUNTIME_DIR/gunicorn.ctl or ~/.gunicorn/gunicorn.ctl) that every gunicorn of that user
takes over in turn: here it is off, unless `GUNICORN_CONTROL_SOCKET` names this instance's own
path (docs/operations.md "gunicorn's control socket").
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mssante.settings")

from django.conf import settings  # noqa: E402 - the settings module named just above

logconfig_dict = settings.LOGGING
# The path without its query string (search words, filters) and without the referer (another
# page's URL and query); the user agent names the integrator's software.
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms "%(a)s"'

# The control socket: off, or at the path this instance was given (never the shared default,
# where the last gunicorn started takes it from the others and the first one stopped deletes it).
# A command-line `--control-socket` alone is not enough: set the variable.
control_socket_disable = not os.environ.get("GUNICORN_CONTROL_SOCKET")
if not control_socket_disable:
    control_socket = os.environ["GUNICORN_CONTROL_SOCKET"]
