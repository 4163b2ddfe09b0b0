from django.urls import path

from . import views

urlpatterns = [
    path("status/<slug:slug>/", views.page_html, name="status-page"),
    path("status/<slug:slug>/status.json", views.page_json, name="status-page-json"),
    path("status/<slug:slug>/feed.atom", views.page_feed, name="status-page-feed"),
]
