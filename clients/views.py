"""Autoconfiguration answers (clients/autoconfig.py): public, read-only, no personal data."""

from django.http import HttpResponse, HttpResponseBadRequest, HttpResponseNotFound
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from clients import autoconfig

XML = "application/xml; charset=utf-8"


@require_http_methods(["GET", "HEAD"])
def thunderbird(request):
    address = request.GET.get("emailaddress", "")
    if address and "@" not in address:
        return HttpResponseBadRequest("Adresse invalide.", content_type="text/plain; charset=utf-8")
    domains = autoconfig.hosted_domains(address)
    if not domains:
        return HttpResponseNotFound("Domaine non hébergé ici.", content_type="text/plain; charset=utf-8")
    return HttpResponse(autoconfig.thunderbird(domains, autoconfig.servers(request.get_host())), content_type=XML)


@csrf_exempt  # Outlook posts its request document without any cookie or token; nothing changes.
@require_http_methods(["GET", "POST"])
def outlook(request):
    if request.method == "GET":
        return HttpResponseBadRequest(
            "Envoyez la requête Autodiscover en POST.", content_type="text/plain; charset=utf-8"
        )
    address = autoconfig.requested_address(request.body[:65536])
    if address is None or "@" not in address:
        return HttpResponseBadRequest("Requête Autodiscover illisible.", content_type="text/plain; charset=utf-8")
    if not autoconfig.hosted_domains(address):
        return HttpResponseNotFound("Domaine non hébergé ici.", content_type="text/plain; charset=utf-8")
    return HttpResponse(autoconfig.outlook(address, autoconfig.servers(request.get_host())), content_type=XML)
