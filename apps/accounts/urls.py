from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

app_name = "accounts"

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.PortalLoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/password/", views.PortalPasswordChangeView.as_view(), name="password_change"),
    path("account/password/done/", views.PortalPasswordChangeDoneView.as_view(), name="password_change_done"),
    path("account/token/", views.api_token, name="token"),
]
