"""The REST API: thin views that parse, call one service or selector, and render."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import selectors, services
from .serializers import (
    DeploymentDetailSerializer,
    DeploymentRequestSerializer,
    DeploymentSerializer,
    ProjectSerializer,
)


class ProjectListCreate(generics.ListCreateAPIView):
    serializer_class = ProjectSerializer

    def get_queryset(self):
        return selectors.project_list()

    def perform_create(self, serializer):
        serializer.instance = services.project_create(actor=self.request.user, **serializer.validated_data)


class ProjectDetail(generics.RetrieveUpdateAPIView):
    serializer_class = ProjectSerializer
    http_method_names = ["get", "patch", "head", "options"]

    def get_object(self):
        return selectors.project_get(slug=self.kwargs["slug"])

    def perform_update(self, serializer):
        serializer.instance = services.project_update(
            project=serializer.instance, actor=self.request.user, **serializer.validated_data
        )


class DeploymentListCreate(generics.ListAPIView):
    serializer_class = DeploymentSerializer

    def get_queryset(self):
        project = selectors.project_get(slug=self.kwargs["slug"])
        return selectors.deployment_list(project=project)

    @extend_schema(request=DeploymentRequestSerializer, responses={202: DeploymentSerializer})
    def post(self, request, slug: str):
        project = selectors.project_get(slug=slug)
        data = DeploymentRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        deployment = services.deployment_request(project=project, actor=request.user, **data.validated_data)
        return Response(DeploymentSerializer(deployment).data, status=status.HTTP_202_ACCEPTED)


class DeploymentDetail(generics.RetrieveAPIView):
    serializer_class = DeploymentDetailSerializer

    def get_object(self):
        project = selectors.project_get(slug=self.kwargs["slug"])
        return selectors.deployment_get(project=project, number=self.kwargs["number"])


class _DeploymentAction(APIView):
    service = None

    @extend_schema(request=None, responses={202: DeploymentSerializer})
    def post(self, request, slug: str, number: int):
        project = selectors.project_get(slug=slug)
        deployment = type(self).service(project=project, number=number, actor=request.user)
        return Response(DeploymentSerializer(deployment).data, status=status.HTTP_202_ACCEPTED)


class DeploymentRollback(_DeploymentAction):
    """Reroute traffic to an earlier deployment that went live; no rebuild."""

    service = staticmethod(services.deployment_rollback)


class DeploymentRedeploy(_DeploymentAction):
    """Deploy an earlier deployment's commit again with the current settings."""

    service = staticmethod(services.deployment_redeploy)
