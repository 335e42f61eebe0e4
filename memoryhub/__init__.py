try:
    from .celery import app as celery_app
except ImportError:  # memoryhub.client is usable without the server's dependencies
    celery_app = None

__all__ = ["celery_app"]
