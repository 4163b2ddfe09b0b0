from django.urls import path

from .views import apply_view, export_view, plan_view, schema_view

urlpatterns = [
    path("schema.json", schema_view, name="config-schema"),
    path("plan/", plan_view, name="config-plan"),
    path("apply/", apply_view, name="config-apply"),
    path("export/", export_view, name="config-export"),
]
