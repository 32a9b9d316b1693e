"""REST API for reporting: thin views over reporting.services and reporting.selectors.

Secrets (the token, destination URLs and signing secrets) are write-only: the API says
whether one is set, never what it is.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from deployments.api.views import project_for

from . import selectors, services
from .links import webhook_url
from .models import GitHubConnection, NotificationDestination, Report


class GitHubConnectionSerializer(serializers.ModelSerializer):
    token_set = serializers.SerializerMethodField()
    webhook_url = serializers.SerializerMethodField()

    class Meta:
        model = GitHubConnection
        fields = ["enabled", "auth", "token_set", "installation_id", "environment", "commit_status", "hook_id",
                  "webhook_url", "problem", "problem_fix", "problem_at", "deliveries_checked_at"]

    def get_token_set(self, obj) -> bool:
        return bool(obj.token)

    def get_webhook_url(self, obj) -> str:
        return webhook_url(project=obj.project)


class GitHubConnectionWriteSerializer(serializers.Serializer):
    """What PATCH accepts (checked again by the service)."""

    enabled = serializers.BooleanField(required=False)
    auth = serializers.ChoiceField(choices=GitHubConnection.Auth.choices, required=False)
    token = serializers.CharField(required=False, allow_blank=True, write_only=True, max_length=255)
    installation_id = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    environment = serializers.CharField(required=False, max_length=255)
    commit_status = serializers.BooleanField(required=False)
    hook_id = serializers.IntegerField(required=False, allow_null=True, min_value=1)


class ReportSerializer(serializers.ModelSerializer):
    deployment = serializers.SerializerMethodField()

    class Meta:
        model = Report
        fields = ["id", "kind", "event", "deployment", "destination", "state", "attempts", "response_code",
                  "last_error", "next_attempt_at", "created_at", "sent_at"]

    def get_deployment(self, obj) -> int | None:
        return obj.deployment.number if obj.deployment_id else None


class DestinationSerializer(serializers.ModelSerializer):
    host = serializers.SerializerMethodField()
    secret_set = serializers.SerializerMethodField()

    class Meta:
        model = NotificationDestination
        fields = ["id", "name", "kind", "host", "secret_set", "events", "enabled", "created_at"]

    def get_host(self, obj) -> str:
        return urlsplit(obj.url).hostname or ""

    def get_secret_set(self, obj) -> bool:
        return bool(obj.secret)


class DestinationWriteSerializer(serializers.Serializer):
    name = serializers.CharField(required=False, max_length=100)
    kind = serializers.ChoiceField(choices=NotificationDestination.Kind.choices, required=False)
    url = serializers.CharField(required=False, write_only=True, max_length=2000)
    secret = serializers.CharField(required=False, write_only=True, allow_blank=True, max_length=255)
    events = serializers.ListField(child=serializers.CharField(max_length=50), required=False, max_length=20)
    enabled = serializers.BooleanField(required=False)


def _connection_data(project) -> dict:
    connection = selectors.github_connection_get(project=project)
    if connection is None:
        return {"enabled": False, "configured": False, "webhook_url": webhook_url(project=project)}
    return {"configured": True, **GitHubConnectionSerializer(connection).data,
            **{k: v for k, v in selectors.reporting_status(project=project).items()
               if k in ("pending", "retrying", "failed")}}


class GitHubSettings(APIView):
    """How the project reports to GitHub (viewer reads; admin changes). `problem` and
    `problem_fix` say what a person must fix when GitHub refuses the credentials."""

    @extend_schema(responses=GitHubConnectionSerializer)
    def get(self, request, slug: str):
        return Response(_connection_data(project_for(request, slug, "view")))

    @extend_schema(request=GitHubConnectionWriteSerializer, responses=GitHubConnectionSerializer)
    def patch(self, request, slug: str):
        project = project_for(request, slug, "settings")
        data = GitHubConnectionWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.github_connection_update(project=project, actor=request.user, **data.validated_data)
        return Response(_connection_data(project))


class GitHubConnect(APIView):
    """Create (or verify) the repository's webhook with the project's credentials."""

    @extend_schema(request=None, responses={200: dict})
    def post(self, request, slug: str):
        project = project_for(request, slug, "settings")
        return Response(services.github_webhook_connect(project=project, actor=request.user))


class ReportList(APIView):
    """The outbox, newest first: `?github=1` for GitHub's rows, `?destination=<id>` for one destination's."""

    @extend_schema(responses=ReportSerializer(many=True))
    def get(self, request, slug: str):
        project = project_for(request, slug, "view")
        destination = request.query_params.get("destination")
        destination_id = services.notification_destination_get(project=project, destination_id=destination).pk \
            if destination else None
        rows = selectors.report_list(project=project, destination_id=destination_id,
                                     github=request.query_params.get("github") in ("1", "true"))
        return Response(ReportSerializer(rows, many=True).data)


class DestinationListCreate(APIView):
    @extend_schema(responses=DestinationSerializer(many=True))
    def get(self, request, slug: str):
        project = project_for(request, slug, "view")
        return Response(DestinationSerializer(selectors.destination_list(project=project), many=True).data)

    @extend_schema(request=DestinationWriteSerializer, responses={201: DestinationSerializer})
    def post(self, request, slug: str):
        project = project_for(request, slug, "settings")
        data = DestinationWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        destination = services.notification_destination_create(project=project, actor=request.user,
                                                                **data.validated_data)
        return Response(DestinationSerializer(destination).data, status=status.HTTP_201_CREATED)


class DestinationDetail(APIView):
    @extend_schema(responses=DestinationSerializer)
    def get(self, request, slug: str, pk: int):
        project = project_for(request, slug, "view")
        return Response(DestinationSerializer(services.notification_destination_get(
            project=project, destination_id=pk)).data)

    @extend_schema(request=DestinationWriteSerializer, responses=DestinationSerializer)
    def patch(self, request, slug: str, pk: int):
        project = project_for(request, slug, "settings")
        destination = services.notification_destination_get(project=project, destination_id=pk)
        data = DestinationWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        destination = services.notification_destination_update(destination=destination, actor=request.user,
                                                                **data.validated_data)
        return Response(DestinationSerializer(destination).data)

    @extend_schema(responses={204: None})
    def delete(self, request, slug: str, pk: int):
        project = project_for(request, slug, "settings")
        services.notification_destination_delete(
            destination=services.notification_destination_get(project=project, destination_id=pk),
            actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DestinationTest(APIView):
    """Queue a test notification (202); its delivery shows in the destination's log."""

    @extend_schema(request=None, responses={202: ReportSerializer})
    def post(self, request, slug: str, pk: int):
        project = project_for(request, slug, "settings")
        destination = services.notification_destination_get(project=project, destination_id=pk)
        row = services.notification_destination_test(destination=destination, actor=request.user)
        return Response(ReportSerializer(row).data, status=status.HTTP_202_ACCEPTED)
