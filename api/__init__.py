"""The REST API for hospital software and the return-box queue (issue 10)."""
