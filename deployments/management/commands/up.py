"""`python manage.py up`: everything one host needs, in the foreground.

The control plane (web server, Celery workers and beat) runs under supervisord, which
restarts a child that dies (with back-off) and logs it.  The data plane lives on its own:
HAProxy runs as its own daemon (its pid file under var/) that `up` starts when it is not
running and starts again if it dies, and the app containers carry the engine's restart
policy.  On start, `up` adopts what already runs.  Ctrl-C or SIGTERM stops the control
plane only: the apps keep serving (`manage.py apps_stop` stops them).  Honours
DATABASE_URL and REDIS_URL.

The console stays calm: a short start-up progress, one block saying where everything is,
then one line per deployment milestone (starting, live, failed, rolled back) and one per
child that had to be restarted.  Each process logs to its own rotated file under
var/log/; `--verbose` sends those logs to the console instead.
"""

from __future__ import annotations

import secrets
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import close_old_connections

from deployments.supervisor import Program, RestartNotices, Supervisord, log_dir_of, python_argv

ROOT = Path(settings.BASE_DIR)
# supervisord itself exiting (it should not) is retried after 1, 2, 4 ... up to 30 seconds.
MAX_BACKOFF_SECONDS = 30.0
# How long start-up waits for the web server and the workers before saying so and going on.
READY_WAIT_SECONDS = 90.0
# The deployment feed and the demo are looked at this often (one indexed query each time).
FEED_INTERVAL_SECONDS = 0.5
WORKERS = ("worker", "switch-worker", "beat")


class Command(BaseCommand):
    help = "Run Switchback on this host: web, worker, scheduler, HAProxy and the container engine API."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000, help="dashboard and API port (default 8000)")
        parser.add_argument("--apps-port", type=int, default=8080,
                            help="HAProxy frontend where apps are served (default 8080)")
        parser.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
        parser.add_argument("--demo", action="store_true",
                            help="create the sample project 'hello' from examples/hello and deploy two "
                                 "revisions of it, so Rollback can be tried at once")
        parser.add_argument("--no-runtime", action="store_true",
                            help="do not start HAProxy or the container engine (API and history only)")
        parser.add_argument("--verbose", action="store_true",
                            help="show every process's log here instead of only in var/log/")
        parser.add_argument("--started-at", type=float, default=None,
                            help=("when the run began (Unix time; scripts/run passes it), for the time "
                                  "to the demo's second revision live"))

    # --- console ---------------------------------------------------------------------------

    def _tick(self, ok: bool = True) -> str:
        mark = "\u2713" if ok else "\u2717"
        try:
            mark.encode(sys.stdout.encoding or "ascii")
        except (UnicodeEncodeError, LookupError):
            mark = "ok" if ok else "FAILED"
        return mark

    def _step(self, name: str, seconds: float, detail: str = "", ok: bool = True) -> None:
        line = f"  {self._tick(ok)} {name:<17} {seconds:5.1f} s"
        self.stdout.write(line + (f"   {detail}" if detail else ""))

    def _log_to_file(self, path: Path) -> None:
        """This process's own log records (adoption, the broker's warnings) go to var/log/up.log."""
        import logging
        import logging.handlers

        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(path, maxBytes=10 * 1024 * 1024, backupCount=3)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        root = logging.getLogger()
        for old in list(root.handlers):
            if isinstance(old, logging.StreamHandler) and not isinstance(old, logging.FileHandler):
                root.removeHandler(old)
        root.addHandler(handler)

    def _say(self, text: str) -> None:
        self.stdout.write(f"{time.strftime('%H:%M:%S')}  {text}")

    # --- main ------------------------------------------------------------------------------

    def handle(self, *args, **opts):
        started_at = opts["started_at"] or time.time()
        began = time.monotonic()
        verbose = opts["verbose"]
        var = Path(settings.VAR_DIR)
        var.mkdir(parents=True, exist_ok=True)
        stopping = {"flag": False}

        def stop(signum, frame):
            stopping["flag"] = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        if not verbose:
            self._log_to_file(log_dir_of(var) / "up.log")
        self.stdout.write("Starting Switchback...")
        t = time.monotonic()
        call_command("migrate", interactive=False, verbosity=1 if verbose else 0)
        login = self._ensure_admin(var)
        self._step("database", time.monotonic() - t, settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1])
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

            services = single_host_services_start(progress=self._step)
            t = time.monotonic()
            adopted = platform_adopt()
            if verbose:
                for line in adopted:
                    self.stdout.write(f"  adopt: {line}")
            if adopted:
                self._step("running apps", time.monotonic() - t, f"{len(adopted)} adopted")
        sup = Supervisord(programs=self._programs(opts, var), var_dir=var, cwd=ROOT, env=env, verbose=verbose)
        notices = RestartNotices(var)
        demo = None
        if opts["demo"]:
            # Queued before the workers start, so the first build begins as soon as one is up.
            demo = self._demo_prepare()
            self._demo_step(demo, started_at)
        log_offsets = {} if verbose else self._log_sizes(log_dir_of(var))
        try:
            sup.start()
            self._wait_ready(sup, opts, stopping, log_offsets)
            if not stopping["flag"]:
                self._block(opts, var, login, demo, time.monotonic() - began)
                self._watch(sup, services, stopping, notices, demo, started_at)
        finally:
            self.stdout.write("Stopping the platform (the apps keep serving)...")
            sup.stop()
            if services is not None:
                services.close()
            self.stdout.write("Stopped.")

    def _programs(self, opts, var: Path) -> list[Program]:
        return [
            # --preload: the app is imported once and the two workers fork from it (on a busy
            # 2-core machine that halves the web's start, the longest step before the block).
            Program("web", python_argv("-m", "gunicorn", "--config", "python:config.gunicorn", "config.wsgi",
                                       "--bind", f"{opts['bind']}:{opts['port']}", "--workers", "2", "--preload",
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

    def _base_url(self, opts) -> str:
        host = "127.0.0.1" if opts["bind"] in ("0.0.0.0", "") else opts["bind"]  # noqa: S104 - a bind, not a listen
        host = f"[{host}]" if ":" in host and not host.startswith("[") else host
        return f"http://{host}:{opts['port']}"

    def _wait_ready(self, sup: Supervisord, opts, stopping: dict, log_offsets: dict[str, int]) -> None:
        """✓ web once /readyz answers 200 (database and broker reachable); ✓ workers once each
        Celery worker logged "ready." (it consumes tasks; in --verbose mode, where the logs go
        to the console, once supervisord reports it RUNNING) and beat is RUNNING."""
        log_dir = log_dir_of(sup.var_dir)
        t = time.monotonic()
        deadline = t + READY_WAIT_SECONDS
        ready_url = self._base_url(opts) + "/readyz"
        web_ready = False
        while not stopping["flag"] and not web_ready and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(ready_url, timeout=2) as response:  # noqa: S310 - our own URL
                    web_ready = response.status == 200
            except (OSError, urllib.error.URLError):
                time.sleep(0.2)
        if stopping["flag"]:
            return
        self._step("web", time.monotonic() - t, self._base_url(opts) if web_ready
                   else f"not ready yet; see {log_dir / 'web.log'}", ok=web_ready)
        t = time.monotonic()
        deadline = t + READY_WAIT_SECONDS
        late = list(WORKERS)
        while not stopping["flag"] and late and time.monotonic() < deadline:
            states = sup.states()
            late = [name for name in WORKERS if states.get(name) != "RUNNING"
                    or (name in log_offsets and not self._logged_ready(log_dir / f"{name}.log", log_offsets[name]))]
            if late:
                time.sleep(0.3)
        if stopping["flag"]:
            return
        self._step("workers", time.monotonic() - t, ", ".join(WORKERS) if not late
                   else f"{', '.join(late)} not ready yet; see {log_dir}/", ok=not late)

    @staticmethod
    def _log_sizes(log_dir: Path) -> dict[str, int]:
        """Where each Celery worker's log ends before this start (a restart appends)."""
        sizes = {}
        for name in ("worker", "switch-worker"):
            try:
                sizes[name] = (log_dir / f"{name}.log").stat().st_size
            except FileNotFoundError:
                sizes[name] = 0
        return sizes

    @staticmethod
    def _logged_ready(path: Path, offset: int) -> bool:
        try:
            with open(path, "rb") as log:
                log.seek(offset)
                return b" ready." in log.read()
        except FileNotFoundError:
            return False

    def _block(self, opts, var: Path, login: str, demo, seconds: float) -> None:
        base = self._base_url(opts)
        domain = settings.SWITCHBACK["BASE_DOMAIN"]
        apps_port = opts["apps_port"]
        port_part = "" if apps_port == 80 else f":{apps_port}"
        lines = [
            f"Switchback is up ({seconds:.1f} s).",
            f"  Dashboard   {base}/",
            f"  Login       {login}",
            f"  API docs    {base}/api/docs/",
        ]
        if demo is not None:
            lines += [
                f"  Demo app    http://hello.{domain}{port_part}/   "
                f"(curl -H 'Host: hello.{domain}' http://127.0.0.1:{apps_port}/)",
                f"  Demo repo   {demo['repo']}   (commit there and deploy, or run `manage.py demo_commit`)",
                "  Try first   once #2 is live: open the project and click Rollback on #1",
            ]
        else:
            lines.append(f"  Apps        http://<project>.{domain}{port_part}/")
        lines += [
            f"  Logs        {log_dir_of(var)}/ (one file per process; --verbose shows them here)",
            "Ctrl-C stops the platform; apps keep serving (`manage.py apps_stop` stops them).",
            "Deployments:",
        ]
        self.stdout.write(self.style.SUCCESS(lines[0]))
        self.stdout.write("\n".join(lines[1:]))

    def _watch(self, sup: Supervisord, services, stopping: dict, notices: RestartNotices, demo,
               started_at: float) -> None:
        """Until Ctrl-C/SIGTERM: keep HAProxy and supervisord running, never stop for a child;
        say what deployments do and which child had to be restarted."""
        from deployments.console_feed import console_feed_after, console_feed_latest_id

        backoff, restart_at = 1.0, None
        feed_after = demo["feed_after"] if demo else console_feed_latest_id()
        next_feed = 0.0
        while not stopping["flag"]:
            if services is not None:
                try:
                    if services.router_ensure():
                        self._say("HAProxy was not running; started it again from the saved routes.")
                except Exception as exc:  # noqa: BLE001 - keep watching; say why it failed
                    self._say(f"HAProxy could not be started: {exc}")
            code = sup.exit_code()
            if code is not None and restart_at is None:
                restart_at = time.monotonic() + backoff
                self._say(f"supervisord exited with code {code}; starting it again in {backoff:.0f} s.")
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
            if restart_at is not None and time.monotonic() >= restart_at:
                sup.start()
                restart_at = None
            for notice in notices.read():
                self._say(notice)
            if time.monotonic() >= next_feed:
                next_feed = time.monotonic() + FEED_INTERVAL_SECONDS
                try:
                    for line in console_feed_after(after_id=feed_after):
                        feed_after = line.event_id
                        if line.text:
                            self._say(line.text)
                    if demo is not None and not demo.get("done"):
                        self._demo_step(demo, started_at)
                except Exception as exc:  # noqa: BLE001 - the database may be briefly away; say so once
                    self._say(f"could not read the deployment history: {exc.__class__.__name__}: {exc}")
                    next_feed = time.monotonic() + 5
                finally:
                    close_old_connections()
            time.sleep(0.2)

    def _ensure_admin(self, var: Path) -> str:
        User = get_user_model()
        password_file = var / "admin-password"
        reset = "reset it with `manage.py changepassword admin`"
        if not User.objects.filter(username="admin").exists():
            password = secrets.token_urlsafe(12)
            User.objects.create_superuser("admin", "", password)
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
            # Shown once, when it is made; later starts only say where it is kept (a
            # terminal's scrollback and captured logs should not collect it at every start).
            return f"admin / {password}   (shown this once; kept in {password_file}, mode 0600)"
        if password_file.exists():
            return f"admin; the password is in {password_file} (mode 0600; {reset})"
        return f"admin ({reset})"

    # --- the demo --------------------------------------------------------------------------

    def _demo_prepare(self) -> dict:
        """The demo repository (two commits) and project; its deployments follow in _demo_step."""
        from deployments.console_feed import console_feed_latest_id
        from deployments.demo import demo_project_ensure, demo_repo_ensure, demo_repo_path

        shas = demo_repo_ensure()
        project = demo_project_ensure()
        return {"repo": demo_repo_path(), "shas": shas, "project_id": project.pk,
                "feed_after": console_feed_latest_id(), "done": False}

    def _demo_step(self, demo: dict, started_at: float) -> None:
        """Deploy the demo's revisions one after the other; once the second is live, say how
        long it took from the start of the run and what to try."""
        from deployments.demo import demo_next_deploy
        from deployments.models import Project, State

        project = Project.objects.get(pk=demo["project_id"])
        demo_next_deploy(project=project, shas=demo["shas"])
        second = project.deployments.filter(commit_sha=demo["shas"][1]).order_by("-number").first()
        if second is None:
            if project.deployments.filter(commit_sha=demo["shas"][0], state=State.FAILED).exists():
                demo["done"] = True
                self._say(f"The demo's first revision failed; see its timeline on the dashboard and "
                          f"{log_dir_of(Path(settings.VAR_DIR)) / 'worker.log'}.")
            return
        if second.state == State.SUCCEEDED:
            demo["done"] = True
            first = project.deployments.filter(commit_sha=demo["shas"][0]).order_by("number").first()
            self._say(f"Demo ready: #{first.number} and #{second.number} went live, "
                      f"{time.time() - started_at:.1f} s after the start. "
                      f"Open the project and click Rollback on #{first.number}.")
        elif second.state in (State.FAILED, State.CANCELLED, State.SUPERSEDED):
            demo["done"] = True
