"""Login accounts in the admin. Identity lives in Professional / Patient; this is the account."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from accounts.models import User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    show_full_result_count = False
    list_display = ["username", "email", "first_name", "last_name", "is_staff", "is_active", "last_login"]
    search_fields = ["username", "email", "last_name"]
