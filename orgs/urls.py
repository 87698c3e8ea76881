from django.urls import path

from orgs import views

app_name = "orgs"

# The members page itself (members/ and members/<id>/limit/) is billing:members:
# it shows each member's spend from the ledger, a layer above orgs.
urlpatterns = [
    path("orgs/", views.org_list, name="list"),
    path("orgs/new/", views.org_create, name="create"),
    path("orgs/<slug:slug>/switch/", views.org_switch, name="switch"),
    path("orgs/<slug:slug>/welcome/", views.welcome, name="welcome"),
    path("members/<int:member_id>/role/", views.member_role, name="member_role"),
    path("members/<int:member_id>/remove/", views.member_remove, name="member_remove"),
    path("invitations/<int:invitation_id>/revoke/", views.invitation_revoke, name="invitation_revoke"),
    path("invitations/<str:token>/", views.invitation, name="invitation"),
]
