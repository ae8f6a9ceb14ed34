"""Housekeeping of the webmail: the trash is emptied after TRASH_RETENTION_DAYS (issue 6 §4)."""

from celery import shared_task

from webmail.organise import purge_expired_trash


@shared_task(name="webmail.purge_expired_trash", acks_late=True)
def purge_expired_trash_task() -> int:
    # Idempotent: a second run finds nothing older than the limit.
    return purge_expired_trash()


@shared_task(name="webmail.fill_address_books", acks_late=True, ignore_result=True)
def fill_address_books_task() -> int:
    # Idempotent: each book reads the entries after its own watermark, under a row lock.
    from webmail.contacts import fill_all_books

    return fill_all_books()


@shared_task(name="webmail.index_search", acks_late=True, ignore_result=True)
def index_search_task() -> int:
    # The search index's queue and its sweeper (webmail/search_index.py): idempotent, and
    # several runs at once share the pending rows (FOR UPDATE SKIP LOCKED).
    from webmail.search_index import index_pending

    return index_pending()
