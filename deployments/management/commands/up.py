"""`python manage.py up`: everything one host needs, in the foreground.

The control plane (web server, Celery workers and beat) runs under supervisord, which
restarts a child that dies (with back-off) and logs it.  The data plane lives on its own:
HAProxy runs as its own daemon (its pid file under var/) that `up` starts when it is not
running and starts again if it dies, and the app containers carry the engine's restart
policy.  On start, `up` adopts what already runs.  Ctrl-C or SIGTERM stops the control
plane only: the apps keep serving (`manage.py apps_stop` stops them).  Honours
DATABASE_URL and REDIS_URL.
"""

from __future__ import annotations

import secrets
import signal
import subprocess
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from deployments.supervisor import Program, Supervisord, python_argv

ROOT = Path(settings.BASE_DIR)
# supervisord itself exiting (it should not) is retried after 1, 2, 4 ... up to 30 seconds.
MAX_BACKOFF_SECONDS = 30.0


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
        stopping = {"flag": False}

        def stop(signum, frame):
            stopping["flag"] = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        env = {"SWITCHBACK_APPS_PORT": str(opts["apps_port"]), "PYTHONUNBUFFERED": "1"}
        if opts["demo"]:
            # The demo builds from a local repository: allow its folder (and only it) as a file:// root.
            roots = [*settings.SWITCHBACK["ALLOWED_SOURCE_ROOTS"], str(var / "demo")]
            settings.SWITCHBACK["ALLOWED_SOURCE_ROOTS"] = roots
            env["SWITCHBACK_ALLOWED_SOURCE_ROOTS"] = ",".join(roots)
        services = None
        if not opts["no_runtime"]:
            # Children read it from the environment; this process's settings are already loaded.
            single_host = settings.SWITCHBACK["SINGLE_HOST"]
            single_host["haproxy_bind"] = f"{single_host['haproxy_bind'].rsplit(':', 1)[0]}:{opts['apps_port']}"
            from deployments.adoption import platform_adopt
            from deployments.runtimes.factories import single_host_services_start

            self.stdout.write("Starting the container engine API and HAProxy...")
            services = single_host_services_start()
            self.stdout.write(services.summary)
            for line in platform_adopt():
                self.stdout.write(f"Adopt: {line}")
        sup = Supervisord(programs=self._programs(opts, var), var_dir=var, cwd=ROOT, env=env)
        try:
            sup.start()
            self.stdout.write(self.style.SUCCESS(
                f"Switchback is up.\n"
                f"  Dashboard and API: http://{opts['bind']}:{opts['port']}/  ({login})\n"
                f"  API docs:          http://{opts['bind']}:{opts['port']}/api/docs/\n"
                f"  Apps:              http://<project>.localhost:{opts['apps_port']}/ "
                f"(e.g. curl -H 'Host: hello.localhost' http://127.0.0.1:{opts['apps_port']}/)\n"
                f"Press Ctrl-C to stop the platform; apps keep serving (`manage.py apps_stop` stops them)."))
            if opts["demo"]:
                self._demo(var)
            self._watch(sup, services, stopping)
        finally:
            self.stdout.write("Stopping the platform (the apps keep serving)...")
            sup.stop()
            if services is not None:
                services.close()
            self.stdout.write("Stopped.")

    def _programs(self, opts, var: Path) -> list[Program]:
        return [
            Program("web", python_argv("-m", "gunicorn", "--config", "python:config.gunicorn", "config.wsgi",
                                       "--bind", f"{opts['bind']}:{opts['port']}", "--workers", "2",
                                       "--access-logfile", "-", "--log-level", "warning")),
            Program("worker", python_argv("-m", "celery", "-A", "config", "worker", "--loglevel", "INFO",
                                          "--concurrency", "3", "--without-gossip", "--without-mingle")),
            # Rollbacks only: a warm rollback never waits behind a build on the main worker.
            Program("switch-worker", python_argv("-m", "celery", "-A", "config", "worker", "--queues", "switch",
                                                 "--hostname", "switch@%h", "--loglevel", "INFO",
                                                 "--concurrency", "2", "--without-gossip", "--without-mingle")),
            Program("beat", python_argv("-m", "celery", "-A", "config", "beat", "--loglevel", "WARNING",
                                        "--schedule", str(var / "celerybeat-schedule"))),
        ]

    def _watch(self, sup: Supervisord, services, stopping: dict) -> None:
        """Until Ctrl-C/SIGTERM: keep HAProxy and supervisord running, never stop for a child."""
        backoff, restart_at = 1.0, None
        while not stopping["flag"]:
            if services is not None:
                try:
                    if services.router_ensure():
                        self.stderr.write("HAProxy was not running; started it again from the saved routes.")
                except Exception as exc:  # noqa: BLE001 - keep watching; say why it failed
                    self.stderr.write(f"HAProxy could not be started: {exc}")
            code = sup.exit_code()
            if code is not None and restart_at is None:
                restart_at = time.monotonic() + backoff
                self.stderr.write(f"supervisord exited with code {code}; starting it again in {backoff:.0f} s.")
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
            if restart_at is not None and time.monotonic() >= restart_at:
                sup.start()
                restart_at = None
            time.sleep(0.2)

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
