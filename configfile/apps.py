from django.apps import AppConfig


class ConfigFileConfig(AppConfig):
    # Monitoring as code: the loopr.yaml format, plan, apply and export. It
    # sits on top of the other apps (it speaks through their API serializers)
    # and nothing imports it.
    name = "configfile"
    verbose_name = "Monitoring as code"
