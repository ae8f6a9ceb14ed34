"""What several apps' admins share (issue 13 item 5: one implementation of each act)."""


class ReadOnlyAdminMixin:
    """An admin page that shows rows and never adds, changes or deletes them through the admin:
    the rows are written by the product's own functions (the audit trail, the space states, the
    directory import…). `allow_delete = True` keeps Django's own delete permission."""

    allow_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return self.allow_delete and super().has_delete_permission(request, obj)
