"""IMAP and SMTP submission for desktop clients and practice software (issue 11)."""
