"""Django's own error pages, answered in JSON under /api/.

DRF renders the errors its views raise; a request that never reaches a view
(an id the URL pattern does not match, `/api/v1/monitors/1.5/`) gets Django's
HTML page, which an API client (and the schema, which says JSON) does not
expect. Elsewhere (the admin, the site) the HTML pages stay.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults


def _in_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _in_api(request):
        return JsonResponse({"detail": "Bad request."}, status=400)
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _in_api(request):
        return JsonResponse({"detail": "You do not have permission to perform this action."}, status=403)
    return defaults.permission_denied(request, exception)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _in_api(request):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if _in_api(request):
        return JsonResponse({"detail": "Server error."}, status=500)
    return defaults.server_error(request)
