from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from console import operate, pages, views

urlpatterns = [
    path("", pages.overview, name="overview"),
    path("workflows/", views.workflow_list, name="workflow_list"),
    path("workflows/bulk/", operate.bulk_action, name="bulk_action"),
    path("workflows/bulk/<int:job_id>/", operate.bulk_progress, name="bulk_progress"),
    path("workflows/<str:workflow_id>/", views.workflow_detail, name="workflow_detail"),
    path("workflows/<str:workflow_id>/steps/", views.workflow_steps, name="workflow_steps"),
    path("workflows/<str:workflow_id>/steps/<int:step_id>/", views.step_detail, name="step_detail"),
    path(
        "workflows/<str:workflow_id>/<str:action>/", operate.workflow_action, name="workflow_action"
    ),
    path("queues/", pages.queues, name="queues"),
    path("audit/", operate.audit, name="audit"),
    path("schedules/", pages.schedules, name="schedules"),
    path("versions/", pages.versions, name="versions"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]
