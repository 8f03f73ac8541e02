"""The console's URLs plus one view that raises, to test error logging."""

from django.http import HttpRequest, HttpResponse
from django.urls import path

from console.urls import urlpatterns as console_urlpatterns


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("boom-marker: a bug in a view")


urlpatterns = [path("boom/", boom), *console_urlpatterns]
