from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path, register_converter

from console import (
    metrics,
    operate,
    pages,
    queue_ops,
    saved_views,
    schedule_ops,
    stream_view,
    views,
)
from console.alerts import views as alerts
from console.converters import StepNumberConverter, WorkflowIdConverter

register_converter(WorkflowIdConverter, "wid")
register_converter(StepNumberConverter, "step")

urlpatterns = [
    path("", pages.overview, name="overview"),
    path("workflows/", views.workflow_list, name="workflow_list"),
    path("workflows/<wid:workflow_id>/", views.workflow_detail, name="workflow_detail"),
    path("workflows/<wid:workflow_id>/steps/", views.workflow_steps, name="workflow_steps"),
    path(
        "workflows/<wid:workflow_id>/steps/<step:step_id>/", views.step_detail, name="step_detail"
    ),
    path(
        "workflows/<wid:workflow_id>/steps/<step:step_id>/<str:part>.json",
        views.step_payload,
        name="step_payload",
    ),
    path("workflows/<wid:workflow_id>/events/", views.workflow_events, name="workflow_events"),
    path(
        "workflows/<wid:workflow_id>/stream/", stream_view.workflow_stream, name="workflow_stream"
    ),
    path(
        "workflows/<wid:workflow_id>/messages/", views.workflow_messages, name="workflow_messages"
    ),
    path(
        "workflows/<wid:workflow_id>/export.json", operate.workflow_export, name="workflow_export"
    ),
    path(
        "workflows/<wid:workflow_id>/<str:part>.json",
        views.workflow_payload,
        name="workflow_payload",
    ),
    path(
        "workflows/<wid:workflow_id>/<str:action>/", operate.workflow_action, name="workflow_action"
    ),
    path("bulk/", operate.bulk_action, name="bulk_action"),
    path("bulk/<int:record_id>/", operate.bulk_progress, name="bulk_progress"),
    path("views/", saved_views.save_view, name="save_view"),
    path("views/<int:view_id>/delete/", saved_views.delete_view, name="delete_view"),
    path("queues/", pages.queues, name="queues"),
    path("queues/<str:name>/<str:action>/", queue_ops.queue_action, name="queue_action"),
    path("audit/", operate.audit, name="audit"),
    path("audit/<int:record_id>/ids.txt", operate.audit_ids, name="audit_ids"),
    path("schedules/", pages.schedules, name="schedules"),
    path(
        "schedules/<path:name>/<str:action>/",
        schedule_ops.schedule_action,
        name="schedule_action",
    ),
    path("versions/", pages.versions, name="versions"),
    path("metrics", metrics.metrics, name="metrics"),
    path("alerts/", alerts.alert_list, name="alert_list"),
    path("alerts/new/", alerts.alert_edit, name="alert_new"),
    path("alerts/<int:rule_id>/", alerts.alert_edit, name="alert_edit"),
    path("alerts/<int:rule_id>/<str:action>/", alerts.alert_action, name="alert_action"),
    path("retention/", pages.retention_page, name="retention"),
    path("executors/", pages.executors, name="executors"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]
