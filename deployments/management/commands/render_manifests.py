"""`manage.py render_manifests <project> --deployment <n>`: the Kubernetes objects a
deployment would apply, as multi-document YAML, with no cluster needed (a dry run to
review or to feed to GitOps).  Environment values are redacted unless asked for."""

from __future__ import annotations

import base64

import yaml
from django.core.management.base import BaseCommand, CommandError

from deployments import selectors
from deployments.errors import SwitchbackError
from deployments.runtimes.factories import ProjectOptionsFromDatabase, kubernetes_options
from deployments.runtimes.image_ref import image_ref_format
from deployments.specs import revision_spec_for

REDACTED_B64 = base64.b64encode(b"REDACTED").decode()


class Command(BaseCommand):
    help = "Print every Kubernetes object the runtime would apply for a deployment (multi-document YAML)."

    def add_arguments(self, parser):
        parser.add_argument("project", help="project slug")
        parser.add_argument("--deployment", type=int, required=True, help="deployment number")
        parser.add_argument("--namespace", default=None,
                            help="namespace (default: that of the project's cluster, else KUBE_NAMESPACE)")
        parser.add_argument("--show-secrets", action="store_true", help="print environment values")

    def handle(self, *args, **opts):
        from deployments.runtimes.kubernetes import render_manifests

        try:
            project = selectors.project_get(slug=opts["project"])
            deployment = selectors.deployment_get(project=project, number=opts["deployment"])
        except SwitchbackError as exc:
            raise CommandError(exc.message) from exc
        try:
            options = kubernetes_options(project.cluster)
        except SwitchbackError as exc:
            raise CommandError(exc.message) from exc
        spec = revision_spec_for(deployment)
        if not spec.image:
            template = project.image_template or options.get("image_template", "{project}:{sha}")
            image = image_ref_format(template, project=project.slug, sha=deployment.commit_sha,
                                     registry=options.get("registry", ""))
            spec = type(spec)(**{**spec.__dict__, "image": image})
        namespace = opts["namespace"] or options.get("namespace", "default")
        objects = render_manifests(spec, namespace=namespace,
                                   options=ProjectOptionsFromDatabase(project.cluster)[project.slug])
        if not opts["show_secrets"]:
            for obj in objects:
                if obj.get("kind") == "Secret":
                    for field in ("data", "stringData"):
                        if field in obj:
                            obj[field] = {key: "REDACTED" if field == "stringData" else REDACTED_B64
                                          for key in obj[field]}
        self.stdout.write(yaml.safe_dump_all(objects, sort_keys=False), ending="")
