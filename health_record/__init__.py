"""The patient's record: medical profile, measures, documents and the profile PDF.

Its own app because it is a whole concern apart from messaging (RULES.md §3, reply contents):
the messaging apps only ask it for a document or the profile PDF to attach.
"""
