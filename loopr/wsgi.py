import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loopr.settings")
application = get_wsgi_application()

# Now, not at the first request: /healthz's start-up grace counts from here.
from loopr import health  # noqa: E402, F401
