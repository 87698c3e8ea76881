from django import forms

from orgs.models import ROLE_DESCRIPTIONS, Role


class OrgCreateForm(forms.Form):
    name = forms.CharField(label="Organization name", max_length=100)


class RoleChoices(forms.RadioSelect):
    """Radio buttons, each tied to the sentence saying what the role may do."""

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex=subindex, attrs=attrs)
        option["attrs"]["aria-describedby"] = f"role-help-{value}"
        option["description"] = ROLE_DESCRIPTIONS.get(value, "")
        return option


class InviteForm(forms.Form):
    email = forms.EmailField(label="E-mail")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER, widget=RoleChoices)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
