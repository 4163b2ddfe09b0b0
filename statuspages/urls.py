from django.urls import path

from . import views

urlpatterns = [
    path("status/<slug:slug>/", views.page_html, name="status-page"),
    path("status/<slug:slug>/status.json", views.page_json, name="status-page-json"),
    path("status/<slug:slug>/feed.atom", views.page_feed, name="status-page-feed"),
    path("badge/<str:token>/status.svg", views.badge, {"kind": "status", "fmt": "svg"}, name="badge-status"),
    path("badge/<str:token>/uptime.svg", views.badge, {"kind": "uptime", "fmt": "svg"}, name="badge-uptime"),
    path("badge/<str:token>/latency.svg", views.badge, {"kind": "latency", "fmt": "svg"}, name="badge-latency"),
    path("badge/<str:token>/shields.json", views.badge, {"kind": "status", "fmt": "json"}, name="badge-shields"),
]
