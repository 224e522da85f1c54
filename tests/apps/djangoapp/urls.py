from django.urls import path

from . import views

urlpatterns = [
    path("users/<int:uid>", views.user),
    path("async/<slug:name>", views.async_view),
    path("boom", views.boom),
    path("async-boom", views.async_boom),
    path("stream", views.stream),
    path("login", views.login),
    path("missing", views.missing),
    path("whoami", views.whoami),
    path("quiet", views.quiet),
    path("subscribe", views.subscribe),
]
