"""The REST API: thin views that check permission, call one service or selector, and render."""

from __future__ import annotations

from collections.abc import Mapping

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import (
    permissions,
    rollback_preview,
    rollback_targets,
    selectors,
    services,
    services_credentials,
    services_members,
)
from ..metrics import metrics_compute
from ..pagination import HistoryPagination
from .serializers import (
    AuditEntrySerializer,
    DeployKeySerializer,
    DeploymentDetailSerializer,
    DeploymentRequestSerializer,
    DeploymentSerializer,
    MembershipRoleSerializer,
    MembershipSerializer,
    MetricsQuerySerializer,
    MetricsSerializer,
    ProjectSerializer,
    PromoteRequestSerializer,
    RollbackPreviewSerializer,
    RollbackRequestSerializer,
    RollbackTargetSerializer,
    ScheduleRequestSerializer,
    WindowOverrideRequestSerializer,
)


def project_for(request, slug: str, action: str):
    """The project, once the caller may do `action` on it (404 stranger, 403 member without the role)."""
    project = selectors.project_get(slug=slug)
    permissions.permission_require(user=request.user, project=project, action=action)
    return project


class ProjectListCreate(generics.ListCreateAPIView):
    """Projects you are a member of (staff: all). Only staff create projects."""

    serializer_class = ProjectSerializer

    def get_queryset(self):
        return selectors.project_list_visible(user=self.request.user)

    def create(self, request, *args, **kwargs):
        # Permission before validation: a refused caller must not learn from a "slug
        # already exists" error which projects there are.
        permissions.project_create_require(user=request.user)
        return super().create(request, *args, **kwargs)

    def perform_create(self, serializer):
        serializer.instance = services.project_create(actor=self.request.user, **serializer.validated_data)


class ProjectDetail(generics.RetrieveUpdateDestroyAPIView):
    """Read a project (viewer); change its settings (admin); DELETE archives it (admin): its
    revisions, route and images are removed, its slug is free again, and its history and
    audit stay readable to staff (as `archived-<id>`)."""

    serializer_class = ProjectSerializer
    http_method_names = ["get", "patch", "delete", "head", "options"]

    def get_object(self):
        action = {"GET": "view", "HEAD": "view", "OPTIONS": "view", "DELETE": "archive"}.get(
            self.request.method, "settings")
        return project_for(self.request, self.kwargs["slug"], action)

    def perform_destroy(self, instance):
        services.project_archive(project=instance, actor=self.request.user)

    def update(self, request, *args, **kwargs):
        # Staff-only fields are refused before the body is validated: a project's admin
        # learns nothing from the validation messages of fields they may not set.
        if isinstance(request.data, Mapping):
            permissions.project_fields_require(user=request.user, project=self.get_object(), fields=request.data)
        return super().update(request, *args, **kwargs)

    def perform_update(self, serializer):
        serializer.instance = services.project_update(
            project=serializer.instance, actor=self.request.user, **serializer.validated_data
        )


class ProjectDeployKey(APIView):
    """The project's SSH deploy key: GET the public half (viewer); POST generates or replaces it,
    DELETE removes it (admin). The private half never leaves the platform."""

    @extend_schema(responses=DeployKeySerializer)
    def get(self, request, slug: str):
        project = project_for(request, slug, "view")
        return Response(DeployKeySerializer(project).data)

    @extend_schema(request=None, responses={201: DeployKeySerializer})
    def post(self, request, slug: str):
        project = project_for(request, slug, "settings")
        project = services_credentials.project_deploy_key_generate(project=project, actor=request.user)
        return Response(DeployKeySerializer(project).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, slug: str):
        project = project_for(request, slug, "settings")
        services_credentials.project_deploy_key_remove(project=project, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DeploymentListCreate(generics.ListAPIView):
    """The deployment history, newest first (viewer); POST deploys a commit (deployer)."""

    serializer_class = DeploymentSerializer
    pagination_class = HistoryPagination

    def get_queryset(self):
        project = project_for(self.request, self.kwargs["slug"], "view")
        self.history_count = project.deployment_counter
        return selectors.deployment_list(project=project)

    @extend_schema(request=DeploymentRequestSerializer, responses={202: DeploymentSerializer})
    def post(self, request, slug: str):
        project = project_for(request, slug, "deploy")
        data = DeploymentRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        deployment = services.deployment_request(project=project, actor=request.user, **data.validated_data)
        return Response(DeploymentSerializer(deployment).data, status=status.HTTP_202_ACCEPTED)


class DeploymentDetail(generics.RetrieveAPIView):
    serializer_class = DeploymentDetailSerializer

    def get_object(self):
        project = project_for(self.request, self.kwargs["slug"], "view")
        return selectors.deployment_get(project=project, number=self.kwargs["number"])


class _DeploymentAction(APIView):
    service = None
    action = ""

    @extend_schema(request=None, responses={202: DeploymentSerializer})
    def post(self, request, slug: str, number: int):
        project = project_for(request, slug, type(self).action)
        deployment = type(self).service(project=project, number=number, actor=request.user)
        return Response(DeploymentSerializer(deployment).data, status=status.HTTP_202_ACCEPTED)


class DeploymentRollback(APIView):
    """Reroute traffic to an earlier deployment that went live; no rebuild (deployer).

    `?preview` answers what it would change (image, env names, replicas, probes, strategy)
    and does nothing; `{"pin": true}` also pins the project (auto-deploys stop switching).
    """

    @extend_schema(request=RollbackRequestSerializer, parameters=[OpenApiParameter(
        "preview", OpenApiTypes.BOOL, description="Only say what the rollback would change.")],
        responses={202: DeploymentSerializer, 200: RollbackPreviewSerializer})
    def post(self, request, slug: str, number: int):
        project = project_for(request, slug, "rollback")
        if "preview" in request.query_params:
            preview = rollback_preview.rollback_preview(project=project, number=number)
            return Response(RollbackPreviewSerializer(preview).data)
        data = RollbackRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        deployment = services.deployment_rollback_now(project=project, number=number, actor=request.user,
                                                      pin=data.validated_data["pin"])
        return Response(DeploymentSerializer(deployment).data, status=status.HTTP_202_ACCEPTED)


class RollbackTargetList(APIView):
    """Every earlier successful revision, once, with its state: warm, cold or unavailable (viewer)."""

    @extend_schema(responses={200: RollbackTargetSerializer(many=True)})
    def get(self, request, slug: str):
        project = project_for(request, slug, "view")
        targets = rollback_targets.rollback_targets_list(project=project)
        return Response(RollbackTargetSerializer(targets, many=True).data)


class ProjectPin(APIView):
    """Pin the project (deployer): merges are built and warmed but do not switch until unpinned."""

    @extend_schema(request=None, responses={200: ProjectSerializer})
    def post(self, request, slug: str):
        project = project_for(request, slug, "rollback")
        return Response(ProjectSerializer(services.project_pin(project=project, actor=request.user)).data)


class ProjectUnpin(APIView):
    """Unpin the project (deployer): a merge held by the pin switches now."""

    @extend_schema(request=None, responses={200: ProjectSerializer})
    def post(self, request, slug: str):
        project = project_for(request, slug, "rollback")
        return Response(ProjectSerializer(services.project_unpin(project=project, actor=request.user)).data)


class DeploymentRedeploy(_DeploymentAction):
    """Deploy an earlier deployment's commit again with the current settings (deployer)."""

    service = staticmethod(services.deployment_redeploy)
    action = "redeploy"


class DeploymentPromote(APIView):
    """Move a waiting rollout on now (deployer): end the current canary step's wait or hold,
    or with `{"full": true}` skip every remaining step; a scheduled switch is brought forward
    to now.  A rollout waiting for the deploy window needs an override with a reason."""

    @extend_schema(request=PromoteRequestSerializer, responses={202: DeploymentSerializer})
    def post(self, request, slug: str, number: int):
        project = project_for(request, slug, "promote")
        data = PromoteRequestSerializer(data=request.data if isinstance(request.data, Mapping) else {})
        data.is_valid(raise_exception=True)
        deployment = services.deployment_promote(project=project, number=number, actor=request.user,
                                                 full=data.validated_data["full"])
        return Response(DeploymentSerializer(deployment).data, status=status.HTTP_202_ACCEPTED)


class DeploymentSchedule(APIView):
    """Set or change when the deployment switches (deployer): a local time in a named zone.
    A time in the past is refused; a fired schedule cannot change; Abort cancels it."""

    @extend_schema(request=ScheduleRequestSerializer, responses={200: DeploymentSerializer})
    def put(self, request, slug: str, number: int):
        project = project_for(request, slug, "promote")
        data = ScheduleRequestSerializer(data=request.data if isinstance(request.data, Mapping) else {})
        data.is_valid(raise_exception=True)
        deployment = services.deployment_schedule_change(project=project, number=number, actor=request.user,
                                                         data=dict(data.validated_data))
        return Response(DeploymentSerializer(deployment).data)

    patch = put


class DeploymentWindowOverride(APIView):
    """Deploy now although the project's deploy window is closed (deployer); the reason is audited."""

    @extend_schema(request=WindowOverrideRequestSerializer, responses={202: DeploymentSerializer})
    def post(self, request, slug: str, number: int):
        project = project_for(request, slug, "promote")
        data = WindowOverrideRequestSerializer(data=request.data if isinstance(request.data, Mapping) else {})
        data.is_valid(raise_exception=True)
        deployment = services.deployment_window_override(project=project, number=number, actor=request.user,
                                                         reason=data.validated_data["reason"])
        return Response(DeploymentSerializer(deployment).data, status=status.HTTP_202_ACCEPTED)


class DeploymentAbort(_DeploymentAction):
    """Stop a rollout in flight: it fails and canary traffic returns to the live revision (deployer)."""

    service = staticmethod(services.deployment_abort)
    action = "abort"


class MemberListCreate(generics.ListAPIView):
    """The project's members and roles (viewer); POST adds a member or sets a role (admin)."""

    serializer_class = MembershipSerializer
    pagination_class = None

    def get_queryset(self):
        project = project_for(self.request, self.kwargs["slug"], "view")
        return selectors.membership_list(project=project)

    @extend_schema(request=MembershipSerializer, responses={201: MembershipSerializer})
    def post(self, request, slug: str):
        project = project_for(request, slug, "members")
        data = MembershipSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services_members.membership_set(
            project=project, username=data.validated_data["user"]["username"],
            role=data.validated_data["role"], actor=request.user,
        )
        return Response(MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)


class MemberDetail(APIView):
    """Change a member's role, or remove them (admin)."""

    @extend_schema(request=MembershipRoleSerializer, responses={200: MembershipSerializer})
    def patch(self, request, slug: str, username: str):
        project = project_for(request, slug, "members")
        data = MembershipRoleSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services_members.membership_set(
            project=project, username=username, role=data.validated_data["role"], actor=request.user)
        return Response(MembershipSerializer(membership).data)

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, slug: str, username: str):
        project = project_for(request, slug, "members")
        services_members.membership_remove(project=project, username=username, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AuditList(generics.ListAPIView):
    """The project's activity: who did what, when, from which revision to which (viewer)."""

    serializer_class = AuditEntrySerializer

    def get_queryset(self):
        project = project_for(self.request, self.kwargs["slug"], "view")
        return selectors.audit_list(project=project)


_DAYS = OpenApiParameter("days", OpenApiTypes.INT, description="Period in days (1-3650, default 30).")


class ProjectMetrics(APIView):
    """The four DORA metrics of one project over a period (viewer)."""

    @extend_schema(parameters=[_DAYS], responses={200: MetricsSerializer})
    def get(self, request, slug: str):
        project = project_for(request, slug, "view")
        query = MetricsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return Response(MetricsSerializer(metrics_compute(projects=[project], **query.validated_data)).data)


class OverallMetrics(APIView):
    """The four DORA metrics over every project you can see."""

    @extend_schema(parameters=[_DAYS], responses={200: MetricsSerializer})
    def get(self, request):
        query = MetricsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        projects = list(selectors.project_list_visible(user=request.user))
        return Response(MetricsSerializer(metrics_compute(projects=projects, **query.validated_data)).data)
