"""The project's own format modules (settings.FORMAT_MODULE_PATH), read before Django's."""
