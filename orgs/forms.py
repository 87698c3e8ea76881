from django import forms

from orgs.models import Role


class OrgCreateForm(forms.Form):
    name = forms.CharField(label="Organization name", max_length=100)


class InviteForm(forms.Form):
    email = forms.EmailField(label="E-mail")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
