"""Settings shared by every environment, read from the environment (12-factor).

With no variables set, Switchback runs on the embedded default: SQLite and a
filesystem broker (no server to set up), so `python manage.py up` works on a fresh
machine.  Set DATABASE_URL and REDIS_URL for PostgreSQL and Redis.
"""

from __future__ import annotations

import json
import os
import re
import sys
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(os.environ.get("SWITCHBACK_VAR_DIR", BASE_DIR / "var"))


def help_only(argv: list[str]) -> bool:
    """`manage.py`, `manage.py --help`, `manage.py help <command>`, `manage.py <command> --help`:
    a run that only prints, so the settings create nothing on disk (no var/, no keys, no broker)."""
    if not argv or Path(argv[0]).name != "manage.py":
        return False
    args = argv[1:]
    return not args or args[0] in {"help", "--help", "-h", "--version", "version"} or bool(
        {"--help", "-h"} & set(args))


HELP_ONLY = help_only(sys.argv)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


CLUSTER_KEYS = {"kubeconfig", "context", "namespace", "in_cluster", "host"}


def env_kube_clusters(name: str) -> dict[str, dict]:
    """Extra Kubernetes clusters projects may choose, as JSON in one variable:

        KUBE_CLUSTERS='{"eu": {"kubeconfig": "/etc/switchback/eu.yaml", "context": "eu-deployer",
                               "namespace": "apps"}}'

    Each names how to connect (a kubeconfig path and context, or the in-cluster
    ServiceAccount) and the namespace; everything else comes from the KUBE_* settings.
    """
    raw = os.environ.get(name, "").strip()
    if not raw:
        return {}
    try:
        clusters = json.loads(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} is not valid JSON: {exc}") from exc
    if not isinstance(clusters, dict):
        raise ImproperlyConfigured(f'{name} must be a JSON object: {{"<name>": {{"kubeconfig": ...}}}}.')
    for cluster, options in clusters.items():
        if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", cluster):
            raise ImproperlyConfigured(f"{name}: '{cluster}' is not a cluster name (lowercase letters, "
                                       "digits and hyphens).")
        if not isinstance(options, dict) or set(options) - CLUSTER_KEYS:
            raise ImproperlyConfigured(f"{name}: cluster '{cluster}' takes an object with the keys "
                                       f"{', '.join(sorted(CLUSTER_KEYS))}.")
        for key, value in options.items():
            if not isinstance(value, bool if key == "in_cluster" else str):
                raise ImproperlyConfigured(f"{name}: cluster '{cluster}': {key} must be "
                                           f"{'true or false' if key == 'in_cluster' else 'a string'}.")
        if not (options.get("kubeconfig") or options.get("in_cluster") or options.get("host")):
            raise ImproperlyConfigured(f"{name}: cluster '{cluster}' names no kubeconfig, host or "
                                       "in_cluster: true.")
    return clusters


SECRET_KEY = os.environ.get("SECRET_KEY", "")
# Fernet keys for secrets at rest, newest first (deployments/crypto.py); rotate with
# `manage.py secrets_rotate` after putting a new key in front.
SWITCHBACK_ENCRYPTION_KEYS = env_list("SWITCHBACK_ENCRYPTION_KEYS", "")
# Never on outside the tests (issue 9): the debug page shows settings, source and locals
# to whoever makes a request fail, and the webhook is open to anyone.  No variable turns it on.
DEBUG = False
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "knox",
    "drf_spectacular",
    "django_htmx",
    "csp",
    "axes",
    "deployments",
    "webhooks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lockout answer.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out username+address before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'switchback.sqlite3'}",
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default: several processes (web, worker, beat) share one file.
    DATABASES["default"]["OPTIONS"] = {"timeout": 30, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

# --- Browser-facing security ----------------------------------------------------------------
# Content-Security-Policy (django-csp 4 settings format).  Everything the dashboard loads
# comes from this origin: htmx is vendored in static/, no inline script or style (the
# confirm prompts live in static/switchback.js, the traffic bars use CSS classes).
# The API's Swagger and Redoc pages load their viewers from a CDN: left out.
CONTENT_SECURITY_POLICY = {
    "EXCLUDE_URL_PREFIXES": ["/api/docs/", "/api/redoc/"],
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"

# Failed-login throttling (django-axes): after LOGIN_FAILURE_LIMIT failures for one
# username from one address, that pair is refused for LOGIN_LOCKOUT_MINUTES.  A
# successful login resets the count.  API tokens are not passwords: not counted here.
AXES_FAILURE_LIMIT = int(os.environ.get("LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=float(os.environ.get("LOGIN_LOCKOUT_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# Failed attempts are kept with their form data: the password is masked by axes itself.
AXES_SENSITIVE_PARAMETERS = ["csrfmiddlewaretoken"]
AXES_HTTP_RESPONSE_CODE = 429
AXES_LOCKOUT_CALLABLE = "deployments.dashboard.errors.login_locked_out"
AXES_CLIENT_IP_CALLABLE = "deployments.client_ip.client_ip_get"
# How many reverse proxies in front of Switchback append to X-Forwarded-For (0: none, the
# address is the TCP peer's).  Production sets 1 (see production.py).
TRUSTED_PROXY_HOPS = int(os.environ.get("SWITCHBACK_TRUSTED_PROXY_HOPS", "0"))

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard:projects"
LOGOUT_REDIRECT_URL = "login"

# --- REST framework -------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # django-rest-knox: tokens stored as SHA-512 digests, shown once (`Authorization: Token <key>`).
        "deployments.api.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "deployments.api.parsers.JSONParser",  # refuses deep nesting and NUL with a 400
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 25,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "deployments.api.exceptions.exception_handler",
}
REST_KNOX = {
    "AUTH_HEADER_PREFIX": "Token",
    # Personal API tokens for scripts and CI: valid until regenerated (the /account/ page).
    "TOKEN_TTL": None,
    # A recognisable prefix lets secret scanners (and people) spot a leaked token.
    "TOKEN_PREFIX": "sb_",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Switchback API",
    "DESCRIPTION": "Projects, deployments, rollbacks. Authenticate with `Authorization: Token <key>`.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # The models' defaults in the schema (deployments/api/schema.py), after the enum hook.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "deployments.api.schema.model_defaults_hook",
    ],
}

# --- Celery -------------------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
else:
    # Embedded default: a broker kept in plain files, no server needed.
    CELERY_BROKER_URL = "filesystem://"
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        if not HELP_ONLY:
            (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        # kombu polls the folder (1 s by default): every task waited half a second on
        # average, a cold rollback's hop included.  A listing of a small folder every 0.1 s
        # costs nothing measurable.
        "polling_interval": float(os.environ.get("SWITCHBACK_FILE_BROKER_POLL_SECONDS", "0.1")),
    }
# Two queues: rollbacks go to "switch" so they never wait behind builds.  A worker
# started without -Q consumes both; `manage.py up` adds one that consumes only "switch".
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_QUEUES = (Queue("celery"), Queue("switch"))
SWITCH_QUEUE = "switch"
# Background work yields the CPU: Celery workers that consume more than the "switch" queue
# (builds, canary verification, the reconciler, reports) and beat lower their own priority
# by this nice increment (0: off), so on a saturated host the web process (API requests,
# warm rollbacks switched in the request) and the switch worker run first.  On Kubernetes
# each role has its own container and this changes nothing between them.
BACKGROUND_NICE = int(os.environ.get("SWITCHBACK_BACKGROUND_NICE", "10"))
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A broker outage must never end a worker: retry forever (Celery's default gives up after
# 100 tries), and cancel acks_late tasks whose connection is gone (they are redelivered;
# every rollout step is idempotent) rather than ack them on a dead channel.
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
# Publishing must never hang a webhook: fail fast, the outbox sweep enqueues later.
CELERY_TASK_PUBLISH_RETRY = False
CELERY_BROKER_CONNECTION_TIMEOUT = float(os.environ.get("BROKER_CONNECT_TIMEOUT", "1.0"))
CELERY_BEAT_SCHEDULE = {
    "outbox-sweep": {"task": "deployments.tasks.outbox_sweep", "schedule": 10.0},
    "reconcile": {"task": "deployments.tasks.reconcile", "schedule": 15.0},
    "liveness": {"task": "deployments.tasks.liveness_check", "schedule": 5.0},
}

# --- Switchback ---------------------------------------------------------------------------
SWITCHBACK = {
    # Largest webhook body accepted; GitHub caps payloads at 25 MB.
    "WEBHOOK_MAX_BODY_BYTES": int(os.environ.get("WEBHOOK_MAX_BODY_BYTES", str(25 * 1024 * 1024))),
    # Public URL people paste into GitHub (shown in the dashboard).  Unset, pages and the API
    # show the URL the request came to; links sent from workers use the default.
    "PUBLIC_URL": os.environ.get("SWITCHBACK_PUBLIC_URL") or "http://localhost:8000",
    "PUBLIC_URL_SET": bool(os.environ.get("SWITCHBACK_PUBLIC_URL")),
    # Seconds a queued deployment may wait un-enqueued before the sweep enqueues it again.
    "OUTBOX_STALE_SECONDS": float(os.environ.get("OUTBOX_STALE_SECONDS", "30")),
    # A rollout step that keeps failing "transiently" fails the deployment with its last
    # reason once this many seconds passed in the phase (or after TRANSIENT_MAX_ATTEMPTS).
    "TRANSIENT_DEADLINES": {
        phase: float(os.environ.get(f"SWITCHBACK_TRANSIENT_DEADLINE_{phase.upper()}", default))
        for phase, default in (("queued", 300), ("building", 1800), ("starting", 600),
                               ("verifying", 600), ("switching", 300))
    },
    "TRANSIENT_MAX_ATTEMPTS": int(os.environ.get("SWITCHBACK_TRANSIENT_MAX_ATTEMPTS", "30")),
    # Runtime name -> factory; see deployments/runtimes/__init__.py.
    "RUNTIMES": {
        "single-host": "deployments.runtimes.factories.single_host",
        "kubernetes": "deployments.runtimes.factories.kubernetes",
    },
    "REGISTRY": os.environ.get("SWITCHBACK_REGISTRY", ""),
    # Where clone URLs may point beyond public https/ssh hosts (deployments/sources.py):
    # folders for file:// URLs, and hosts (names, IPs or CIDR networks) that may be local.
    "ALLOWED_SOURCE_ROOTS": env_list("SWITCHBACK_ALLOWED_SOURCE_ROOTS", ""),
    "ALLOWED_SOURCE_HOSTS": env_list("SWITCHBACK_ALLOWED_SOURCE_HOSTS", ""),
    # A rollback to a warm revision switches within the API request, under the project's
    # lock (no queue hop); a cold one always goes to a worker.
    "ROLLBACK_IN_REQUEST": env_bool("SWITCHBACK_ROLLBACK_IN_REQUEST", True),
    # Apps are served at <project-slug>.<BASE_DOMAIN>.
    "BASE_DOMAIN": os.environ.get("SWITCHBACK_BASE_DOMAIN", "localhost"),
    # Single host: containers through the Docker Engine API (Docker, or Podman's service),
    # traffic through our own HAProxy.  Every worker on the host shares state_dir.
    "SINGLE_HOST": {
        "engine_url": os.environ.get("DOCKER_HOST") or f"unix://{VAR_DIR / 'podman.sock'}",
        "state_dir": os.environ.get("SWITCHBACK_SINGLE_HOST_DIR", str(VAR_DIR / "single-host")),
        "haproxy_bind": os.environ.get(
            "SWITCHBACK_APPS_BIND", "127.0.0.1:" + os.environ.get("SWITCHBACK_APPS_PORT", "8080")
        ),
        "base_domain": os.environ.get("SWITCHBACK_BASE_DOMAIN", "localhost"),
        # Replicas' loopback ports (HAProxy dials them) come from this range, kept outside the
        # kernel's ephemeral range (32768-60999 on Linux): see containers.publish_port_pick.
        "publish_ports": os.environ.get("SWITCHBACK_PUBLISH_PORTS", "20000-29999"),
        # Every app container: at most this many processes and threads (a fork bomb stays inside).
        "pids_limit": int(os.environ.get("SWITCHBACK_PIDS_LIMIT", "512")),
        # User namespace of app containers: "auto" maps root inside to an unused unprivileged
        # host range (Podman; needs /etc/subuid and /etc/subgid entries for "containers").
        # Empty leaves it to the engine (Docker: the daemon's userns-remap).
        "userns": os.environ.get("SWITCHBACK_USERNS", "auto"),
    },
    # Isolation between projects: the prebuilt images a project may run (image_template),
    # as globs or prefixes ending in "/" (e.g. "registry.example.com/team/*"); empty means
    # only the project's own built images.  Only staff set image_template at all.
    "ALLOWED_IMAGE_TEMPLATES": env_list("SWITCHBACK_ALLOWED_IMAGE_TEMPLATES", ""),
    # The most memory and CPU one replica may be given (a project's memory_mb and cpus).
    "MAX_MEMORY_MB": int(os.environ.get("SWITCHBACK_MAX_MEMORY_MB", "4096")),
    "MAX_CPUS": float(os.environ.get("SWITCHBACK_MAX_CPUS", "4")),
    # Kubernetes routing: the Gateway HTTPRoutes attach to, the ingress class, and the
    # header that sends a request to an ingress-nginx canary.
    "KUBE_GATEWAY": os.environ.get("KUBE_GATEWAY", "switchback/switchback"),  # namespace/name
    "KUBE_INGRESS_CLASS": os.environ.get("KUBE_INGRESS_CLASS", "nginx"),
    "KUBE_CANARY_HEADER": os.environ.get("KUBE_CANARY_HEADER", ""),
    # Metric gates on Kubernetes: the Prometheus HTTP API, query templates per router (JSON
    # {"nginx": {"requests": ..., "errors": ..., "latency": ...}}; built-in ones for
    # ingress-nginx and Istio's Gateway), and the shortest window a query asks about.
    "GATE_PROMETHEUS_URL": os.environ.get("SWITCHBACK_GATE_PROMETHEUS_URL", ""),
    "GATE_PROMETHEUS_QUERIES": os.environ.get("SWITCHBACK_GATE_PROMETHEUS_QUERIES", ""),
    "GATE_PROMETHEUS_WINDOW": float(os.environ.get("SWITCHBACK_GATE_PROMETHEUS_WINDOW", "30")),
    # Kubernetes: in-cluster ServiceAccount, or a kubeconfig path and context.
    "KUBERNETES": {
        key: value
        for key, value in {
            "namespace": os.environ.get("KUBE_NAMESPACE", "default"),
            "kubeconfig": os.environ.get("KUBECONFIG", ""),
            "context": os.environ.get("KUBE_CONTEXT", ""),
            "in_cluster": env_bool("KUBE_IN_CLUSTER", False),
            "build_mode": os.environ.get("KUBE_BUILD_MODE", "prebuilt"),
            "image_template": os.environ.get(
                "KUBE_IMAGE_TEMPLATE",
                "{registry}/{project}:{sha}" if os.environ.get("SWITCHBACK_REGISTRY") else "{project}:{sha}",
            ),
            "registry": os.environ.get("SWITCHBACK_REGISTRY", ""),
            # A kubernetes.io/dockerconfigjson Secret in the namespace, for the build Job to push with.
            "registry_secret": os.environ.get("KUBE_REGISTRY_SECRET", ""),
            "executor_image": os.environ.get("KUBE_BUILD_EXECUTOR_IMAGE", ""),
        }.items()
        if value not in ("", None)
    },
    # More clusters, by name: a project whose `cluster` names one runs there (see above).
    "KUBE_CLUSTERS": env_kube_clusters("KUBE_CLUSTERS"),
}
DATA_UPLOAD_MAX_MEMORY_SIZE = SWITCHBACK["WEBHOOK_MAX_BODY_BYTES"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # django-axes says "BEGIN version ..." at INFO in every process at start: noise.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}

# --- Reporting: GitHub deployment statuses, missed deliveries, notifications (reporting/) ----
INSTALLED_APPS.append("reporting")
# Reports have their own queue: a slow GitHub or destination never holds a build's worker.
# A worker started without -Q consumes it too.
REPORTS_QUEUE = os.environ.get("SWITCHBACK_REPORTS_QUEUE", "reports")
CELERY_TASK_QUEUES = (*CELERY_TASK_QUEUES, Queue(REPORTS_QUEUE))
CELERY_BEAT_SCHEDULE.update({
    "reports-sweep": {"task": "reporting.tasks.reports_sweep", "schedule": 5.0,
                      "options": {"queue": REPORTS_QUEUE}},
    "reports-prune": {"task": "reporting.tasks.reports_prune", "schedule": 3600.0,
                      "options": {"queue": REPORTS_QUEUE}},
    "deliveries-recover": {"task": "reporting.tasks.deliveries_recover",
                           "schedule": float(os.environ.get("GITHUB_REDELIVERY_INTERVAL", "300")),
                           "options": {"queue": REPORTS_QUEUE}},
})
SWITCHBACK["GITHUB"] = {
    # GitHub Enterprise Server: https://<host>/api/v3
    "API_URL": os.environ.get("GITHUB_API_URL", "https://api.github.com"),
    "TOKEN": os.environ.get("GITHUB_TOKEN", ""),  # the platform-wide token (projects may bring their own)
    "APP_ID": os.environ.get("GITHUB_APP_ID", ""),
    "APP_PRIVATE_KEY": os.environ.get("GITHUB_APP_PRIVATE_KEY", ""),
    "APP_PRIVATE_KEY_FILE": os.environ.get("GITHUB_APP_PRIVATE_KEY_FILE", ""),
    "TIMEOUT_SECONDS": float(os.environ.get("GITHUB_TIMEOUT_SECONDS", "10")),
    # The live URL reported as environment_url; {project} and {base_domain} are filled in.
    "ENVIRONMENT_URL": os.environ.get("SWITCHBACK_APP_URL_TEMPLATE", "http://{project}.{base_domain}"),
}
SWITCHBACK["NOTIFY"] = {
    # Destinations must be https; plain http only to these host names.
    "ALLOWED_HTTP_HOSTS": env_list("NOTIFY_ALLOWED_HTTP_HOSTS", ""),
    # Loopback, private, link-local and other special addresses are refused unless listed
    # here (addresses or networks, e.g. 10.0.0.0/8 for an internal Mattermost).
    "ALLOWED_PRIVATE_NETWORKS": env_list("NOTIFY_ALLOWED_PRIVATE_NETWORKS", ""),
    "TIMEOUT_SECONDS": float(os.environ.get("NOTIFY_TIMEOUT_SECONDS", "10")),
}
SWITCHBACK["REPORTS"] = {
    "MAX_ATTEMPTS": int(os.environ.get("REPORTS_MAX_ATTEMPTS", "25")),
    "LEASE_SECONDS": float(os.environ.get("REPORTS_LEASE_SECONDS", "120")),
    # Sent, skipped and failed reports (the delivery logs) are kept this long.
    "RETENTION_DAYS": float(os.environ.get("REPORTS_RETENTION_DAYS", "30")),
}
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"] = {
    **SPECTACULAR_SETTINGS.get("ENUM_NAME_OVERRIDES", {}),
    "ReportStateEnum": "reporting.models.Report.State",
    "StateEnum": "deployments.models.State",  # unchanged from before reporting existed
    "ReportKindEnum": "reporting.models.Report.Kind",
    "NotificationDestinationKindEnum": "reporting.models.NotificationDestination.Kind",
}
