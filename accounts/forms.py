from django import forms
from django.contrib.auth import password_validation
from django.contrib.auth.forms import AuthenticationForm

from accounts import key_budgets
from accounts.models import Scope, User
from billing_project.errors import InvalidRequest
from orgs.models import normalize_email


class SignupForm(forms.Form):
    email = forms.EmailField(label="Work e-mail", widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}))
    full_name = forms.CharField(label="Your name", max_length=150, required=False, widget=forms.TextInput(attrs={"autocomplete": "name"}))
    password = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="At least 10 characters, not a common password.",
    )

    def clean_email(self) -> str:
        email = normalize_email(self.cleaned_data["email"])
        if User.objects.filter(email=email).exists():
            raise forms.ValidationError("An account with this e-mail already exists. Sign in instead.")
        return email

    def clean(self):
        cleaned = super().clean()
        password = cleaned.get("password")
        if password:
            probe = User(email=cleaned.get("email", ""), full_name=cleaned.get("full_name", ""))
            try:
                password_validation.validate_password(password, probe)
            except forms.ValidationError as error:
                self.add_error("password", error)
        return cleaned


class LoginForm(AuthenticationForm):
    username = forms.EmailField(label="E-mail", widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}))

    def clean_username(self) -> str:
        return normalize_email(self.cleaned_data["username"])


class APIKeyBudgetForm(forms.Form):
    """A key's monthly credit limit and the meters it may record."""

    monthly_limit = forms.CharField(
        label="Monthly limit (credits)", max_length=20, required=False,
        help_text="Blank: no limit. 0: it can record nothing that costs credits.",
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off", "placeholder": "No limit"}),
    )
    meters = forms.MultipleChoiceField(
        label="Meters it may record", required=False, widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every meter.",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        choices = [(code, f"{name} ({code})") for code, name in key_budgets.meter_choices()]
        if choices:
            self.fields["meters"].choices = choices
        else:
            del self.fields["meters"]  # no meter to name: the key records every meter

    def clean_monthly_limit(self) -> int | None:
        try:
            return key_budgets.limit_parse(self.cleaned_data["monthly_limit"])
        except InvalidRequest as error:
            raise forms.ValidationError(error.message) from None


class APIKeyForm(APIKeyBudgetForm):
    name = forms.CharField(max_length=50, help_text="What will use it, e.g. “workflow-runner”.")
    scopes = forms.MultipleChoiceField(
        choices=Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=[Scope.READ, Scope.USAGE_WRITE],
    )

    field_order = ["name", "scopes", "monthly_limit", "meters"]
