from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path

from accounts import views as account_views

# Under /api/, an unexpected error is problem details too (a path no route matches is the API's
# last route, api.problems.no_route, so that it holds with DEBUG on); elsewhere Django's pages.
handler400 = "api.problems.bad_request"
handler404 = "api.problems.page_not_found"
handler500 = "api.problems.server_error"


urlpatterns = [
    path("", account_views.home, name="home"),
    # The admin's own login form checks the password alone: an administrator who enrolled a
    # second factor got a full admin session without it. Its URL now leads to allauth's sign-in
    # (password, then the second factor; RULES.md §5), and back to the admin page asked for.
    path("admin/login/", secure_admin_login(admin.site.login)),
    path("admin/", admin.site.urls),
    path("comptes/", include("accounts.urls")),
    path("comptes/", include("allauth.urls")),
    path("pro/retours-patients/", include("api.page_urls")),
    path("pro/", include("webmail.urls")),
    path("patient/rendez-vous/", include("automation.patient_urls")),
    path("patient/", include("patients.urls")),
    path("dossier/", include("health_record.urls")),
    path("operateur/", include("mailboxes.urls")),
    path("annuaire/", include("directory.urls")),
    path("pro/automatisation/", include("automation.urls")),
    path("api/", include("api.urls")),
    path("", include("clients.urls")),
    path("", include("operations.urls")),
]
