"""A Django project laid out as cookiecutter-django lays it out (``config`` holds settings,
URLs and the WSGI entry), run by ``manage.py runserver`` and ``gunicorn
config.wsgi:application``; no spyglass anywhere."""
SECRET_KEY = "test-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "config.urls"
INSTALLED_APPS = []
MIDDLEWARE = []
DATABASES = {}
USE_TZ = True
LOGGING_CONFIG = None
