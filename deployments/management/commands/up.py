"""`python manage.py up`: everything one host needs, in the foreground.

Web server (gunicorn), Celery worker and beat, and the single-host runtime's services
(HAProxy, and the container engine's API service if none runs).  Prints where to open
the dashboard; Ctrl-C or SIGTERM stops every child.  Honours DATABASE_URL and REDIS_URL.
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import subprocess
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from deployments.supervisor import Supervisor, python_argv

ROOT = Path(settings.BASE_DIR)


class Command(BaseCommand):
    help = "Run Switchback on this host: web, worker, scheduler, HAProxy and the container engine API."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000, help="dashboard and API port (default 8000)")
        parser.add_argument("--apps-port", type=int, default=8080,
                            help="HAProxy frontend where apps are served (default 8080)")
        parser.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
        parser.add_argument("--demo", action="store_true",
                            help="create the sample project 'hello' from examples/hello and deploy it")
        parser.add_argument("--no-runtime", action="store_true",
                            help="do not start HAProxy or the container engine (API and history only)")

    def handle(self, *args, **opts):
        var = Path(settings.VAR_DIR)
        var.mkdir(parents=True, exist_ok=True)
        call_command("migrate", interactive=False, verbosity=0)
        login = self._ensure_admin(var)
        sup = Supervisor()
        stopping = {"flag": False}

        def stop(signum, frame):
            stopping["flag"] = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        env = {"SWITCHBACK_APPS_PORT": str(opts["apps_port"]), "PYTHONUNBUFFERED": "1"}
        stack = contextlib.ExitStack()
        try:
            if not opts["no_runtime"]:
                # Children read it from the environment; this process's settings are already loaded.
                single_host = settings.SWITCHBACK["SINGLE_HOST"]
                single_host["haproxy_bind"] = f"{single_host['haproxy_bind'].rsplit(':', 1)[0]}:{opts['apps_port']}"
                from deployments.runtimes.factories import single_host_services_start

                self.stdout.write("Starting the container engine API and HAProxy...")
                self.stdout.write(single_host_services_start(stack=stack))
            sup.start("web", python_argv("-m", "gunicorn", "--config", "python:config.gunicorn",
                                         "config.wsgi", "--bind",
                                         f"{opts['bind']}:{opts['port']}", "--workers", "2",
                                         "--access-logfile", "-", "--log-level", "warning"),
                      env=env, cwd=ROOT)
            sup.start("worker", python_argv("-m", "celery", "-A", "config", "worker", "--loglevel",
                                            "INFO", "--concurrency", "3", "--without-gossip",
                                            "--without-mingle"), env=env, cwd=ROOT)
            # Rollbacks only: a warm rollback never waits behind a build on the main worker.
            sup.start("switch-worker", python_argv("-m", "celery", "-A", "config", "worker", "--queues", "switch",
                                                   "--hostname", "switch@%h", "--loglevel", "INFO",
                                                   "--concurrency", "2", "--without-gossip", "--without-mingle"),
                      env=env, cwd=ROOT)
            sup.start("beat", python_argv("-m", "celery", "-A", "config", "beat", "--loglevel", "WARNING",
                                          "--schedule", str(var / "celerybeat-schedule")), env=env, cwd=ROOT)
            self.stdout.write(self.style.SUCCESS(
                f"Switchback is up.\n"
                f"  Dashboard and API: http://{opts['bind']}:{opts['port']}/  ({login})\n"
                f"  API docs:          http://{opts['bind']}:{opts['port']}/api/docs/\n"
                f"  Apps:              http://<project>.localhost:{opts['apps_port']}/ "
                f"(e.g. curl -H 'Host: hello.localhost' http://127.0.0.1:{opts['apps_port']}/)\n"
                f"Press Ctrl-C to stop."))
            if opts["demo"]:
                self._demo(var)
            while not stopping["flag"]:
                dead = sup.dead()
                if dead:
                    self.stderr.write(f"{', '.join(dead)} exited; stopping everything.")
                    break
                time.sleep(0.5)
        finally:
            self.stdout.write("Stopping...")
            sup.stop()
            stack.close()
            self.stdout.write("Stopped.")

    def _ensure_admin(self, var: Path) -> str:
        User = get_user_model()
        password_file = var / "admin-password"
        if not User.objects.filter(username="admin").exists():
            password = secrets.token_urlsafe(12)
            User.objects.create_superuser("admin", "", password)
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
            # Shown once, when it is made; later starts only say where it is kept (a
            # terminal's scrollback and captured logs should not collect it at every start).
            return f"log in as admin / {password}; it is kept in {password_file} (mode 0600)"
        if password_file.exists():
            return f"log in as admin; the password is in {password_file} (mode 0600)"
        return "log in as admin"

    def _demo(self, var: Path) -> None:
        """Make a git repository of examples/hello and deploy its head as project 'hello'."""
        from deployments.models import Project
        from deployments.services import deployment_request, project_create

        repo = var / "demo" / "hello"
        if not (repo / ".git").exists():
            repo.mkdir(parents=True, exist_ok=True)
            subprocess.run(["cp", "-r", f"{ROOT / 'examples' / 'hello'}/.", str(repo)], check=True)
            git = ["git", "-C", str(repo), "-c", "user.name=Switchback Demo", "-c", "user.email=demo@localhost"]
            subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
            subprocess.run([*git, "add", "-A"], check=True)
            subprocess.run([*git, "commit", "-qm", "Sample app"], check=True)
        sha = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], check=True,
                             capture_output=True, text=True).stdout.strip()
        project = Project.objects.filter(slug="hello").first()
        if project is None:
            project = project_create(actor=None, name="Hello", slug="hello", repository="switchback/hello",
                                     clone_url=f"file://{repo}", webhook_secret=secrets.token_hex(16))
        if not project.deployments.filter(commit_sha=sha).exists():
            deployment = deployment_request(project=project, sha=sha, actor=None, message="Sample app")
            self.stdout.write(f"Demo: deploying hello #{deployment.number} ({sha[:7]}); "
                              "watch it on the dashboard.")
