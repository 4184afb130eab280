"""The smallest Django project that runs django-appointment's booking pages, for bench.peers.

The database comes from ``PEER_DATABASE_URL``: ``sqlite:///path`` or a ``postgres://`` URL.
"""

import os
from urllib.parse import urlsplit

_url = urlsplit(os.environ["PEER_DATABASE_URL"])
if _url.scheme == "sqlite":
    _database = {"ENGINE": "django.db.backends.sqlite3", "NAME": _url.path}
else:
    _database = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _url.path.lstrip("/"),
        "USER": _url.username or "",
        "PASSWORD": _url.password or "",
        "HOST": _url.hostname or "",
        "PORT": str(_url.port or ""),
    }
DATABASES = {"default": _database}
# Made by run.py in its scratch directory: the package ships none.
MIGRATION_MODULES = {"appointment": "peer_migrations"}

SECRET_KEY = "bench-peers-not-secret"  # noqa: S105 - a throwaway process on a scratch database
DEBUG = False
ALLOWED_HOSTS = ["testserver"]
USE_TZ = True
TIME_ZONE = "America/New_York"  # the clinic's zone: the peer keeps wall-clock times in it
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
ROOT_URLCONF = "peer_urls"
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "phonenumber_field",
    "appointment",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
PHONENUMBER_DEFAULT_REGION = "US"
LOGGING = {"version": 1, "disable_existing_loggers": True}
