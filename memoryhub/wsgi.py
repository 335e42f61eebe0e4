"""WSGI entry point: production serves the REST API and dashboard here (gunicorn), websockets on daphne."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "memoryhub.settings")
application = get_wsgi_application()
