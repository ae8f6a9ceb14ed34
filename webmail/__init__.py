"""The professionals' webmail: pages over the message store.

Its own app because the pages are a whole concern apart from the operator's rules in
`mailboxes/`: views parse and answer, `mailboxes` actions change state.
"""
