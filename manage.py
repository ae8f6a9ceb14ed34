#!/usr/bin/env python
import os
import sys

# Commands that neither serve nor sign anything may run without SECRET_KEY (a CI
# `makemigrations --check`, a build step's `collectstatic`); every other command refuses to
# start without one when DEBUG is off.
OFFLINE_COMMANDS = {"makemigrations", "showmigrations", "sqlmigrate", "collectstatic", "help"}


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mssante.settings")
    if len(sys.argv) > 1 and sys.argv[1] in OFFLINE_COMMANDS:
        os.environ.setdefault("SECRET_KEY_NOT_NEEDED", "true")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
