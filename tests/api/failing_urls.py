"""The product's URLs with a path under /api/ and one outside it whose view fails as an
unforeseen bug would: a plain Django view (not DRF's), so the tests see what Django itself does
with the error."""

from django.urls import include, path


def failing_view(request):
    raise RuntimeError("an unforeseen bug")


urlpatterns = [
    path("api/v1/failing", failing_view),
    path("webmail/failing", failing_view),
    path("", include("mssante.urls")),
]
handler404 = "api.problems.page_not_found"
handler500 = "api.problems.server_error"
