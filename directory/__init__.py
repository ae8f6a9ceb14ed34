"""The national MSSanté directory: import, search and completion (issue 12)."""
