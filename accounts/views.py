from axes.helpers import get_client_ip_address
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse, reverse_lazy
from django.views.decorators.http import require_POST

from accounts import key_budgets, selectors, services
from accounts.forms import APIKeyBudgetForm, APIKeyForm, LoginForm, SignupForm
from accounts.models import OrgAPIKey, Scope
from accounts.ratelimit import ratelimit_hit
from billing_project.errors import TollgateError
from orgs import services as org_services
from orgs.current import membership_required, switch_to
from orgs.models import Membership
from orgs.views import PENDING_INVITATION


def _accept_pending_invitation(request) -> Membership | None:
    """An invitation link opened before signing in is accepted right after;
    returns the membership it gave, whose welcome screen comes next."""
    token = request.session.pop(PENDING_INVITATION, None)
    if not token:
        return None
    try:
        membership = org_services.invitation_accept(token=token, user=request.user)
    except TollgateError as error:
        messages.error(request, error.message)
        return None
    switch_to(request, membership)
    return membership


def signup(request):
    if request.user.is_authenticated:
        return redirect("home")
    form = SignupForm(request.POST or None, initial={"email": request.GET.get("email", "")})
    if request.method == "POST" and form.is_valid():
        try:
            user = services.user_signup(**form.cleaned_data)
        except TollgateError as error:
            form.add_error(None, error.message)
        else:
            pending = request.session.get(PENDING_INVITATION)
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            if pending:
                request.session[PENDING_INVITATION] = pending  # login() cycles the session
            joined = _accept_pending_invitation(request)
            messages.success(request, "Welcome to Tollgate. Your account is ready.")
            if joined is not None:
                return redirect("orgs:welcome", slug=joined.org.slug)
            return redirect("home")
    return render(request, "accounts/signup.html", {"form": form})


def _cooloff_minutes() -> int:
    return max(1, int(settings.AXES_COOLOFF_TIME.total_seconds() // 60))


def _login_refused(request, message: str):
    """The sign-in page with `message` at the top, answered 429: a person who
    typed a wrong password too often sees why and what to do."""
    form = LoginForm(request, initial={"username": request.POST.get("username", "")})
    context = {"form": form, "refusal": message, "next": request.POST.get("next", "")}
    return render(request, "accounts/login.html", context, status=429)


def login_locked_out(request, original_response=None, credentials=None):
    """django-axes' lockout answer (AXES_LOCKOUT_CALLABLE): one account from one address."""
    return _login_refused(
        request,
        f"Too many failed sign-ins for this account. Try again in {_cooloff_minutes()} minutes, "
        "or reset your password.",
    )


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    authentication_form = LoginForm
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        # axes locks an account per address; this looser limit stops one
        # address guessing across many accounts.
        if selectors.login_failures_from(get_client_ip_address(request)) >= settings.LOGIN_IP_FAILURE_LIMIT:
            return _login_refused(
                request,
                f"Too many failed sign-ins from your address. Try again in {_cooloff_minutes()} minutes.",
            )
        return super().post(request, *args, **kwargs)

    def form_valid(self, form):
        pending = self.request.session.get(PENDING_INVITATION)
        response = super().form_valid(form)
        if pending:
            self.request.session[PENDING_INVITATION] = pending
        joined = _accept_pending_invitation(self.request)
        if joined is not None:
            return redirect("orgs:welcome", slug=joined.org.slug)
        return response


class PasswordResetView(auth_views.PasswordResetView):
    template_name = "accounts/password_reset.html"
    email_template_name = "emails/password_reset.txt"
    subject_template_name = "emails/password_reset_subject.txt"
    success_url = reverse_lazy("accounts:password_reset_done")

    def form_valid(self, form):
        # Counted for every address asked, known or not, so the limit tells
        # nothing about which addresses have accounts.
        checks = (
            ("password_reset:address", form.cleaned_data["email"], settings.PASSWORD_RESET_ADDRESS_LIMIT),
            ("password_reset:client", self.request.META.get("REMOTE_ADDR", ""), settings.PASSWORD_RESET_CLIENT_LIMIT),
        )
        for scope, key, limit in checks:
            verdict = ratelimit_hit(scope=scope, key=key, limit=limit, window_seconds=3600)
            if not verdict.allowed:
                form.add_error(
                    None,
                    f"Too many reset requests. Try again in {verdict.retry_after_minutes} minutes; "
                    "a link already sent stays valid.",
                )
                return self.render_to_response(self.get_context_data(form=form), status=429)
        return super().form_valid(form)


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "accounts/password_reset_confirm.html"
    success_url = reverse_lazy("accounts:password_reset_complete")


@membership_required
def api_keys(request):
    org = request.membership.org
    can_manage = request.membership.can_manage_api_keys
    form = APIKeyForm(request.POST or None)
    new_secret = new_key = refusal = None
    if request.method == "POST":
        if not can_manage:
            messages.error(request, "Only owners and admins can create API keys.")
            return redirect("keys:list")
        if form.is_valid():
            try:
                new_key, new_secret = services.api_key_create(
                    org=org, name=form.cleaned_data["name"], scopes=form.cleaned_data["scopes"], actor=request.user,
                    monthly_limit_micros=form.cleaned_data["monthly_limit"], meters=form.cleaned_data.get("meters", []),
                )
            except TollgateError as error:
                form.add_error(None, error.message)
                refusal = error  # a plan's key cap links to the plan that allows more
            else:
                form = APIKeyForm()
    keys = list(OrgAPIKey.objects.filter(org=org).order_by("revoked", "-created"))
    paused = [key for key in keys if key.paused_at is not None and not key.revoked]
    # Each key's spend this month, and a form to change its limit and meters.
    spent = key_budgets.spent_this_month(org, keys)
    for key in keys:
        key.spent_this_month_micros = spent.get(key.prefix, 0)
        if can_manage and not key.revoked:
            key.budget_form = APIKeyBudgetForm(prefix=key.prefix, initial={
                "monthly_limit": key_budgets.limit_text(key.monthly_limit_micros), "meters": key.meters,
            })
    return render(
        request,
        "accounts/api_keys.html",
        {"form": form, "keys": keys, "new_secret": new_secret, "can_manage": can_manage,
         # The example request goes to this deployment, at the address the page was opened on.
         "example_url": request.build_absolute_uri(reverse("api:balance")),
         "new_key_reads": new_key is not None and Scope.READ in new_key.scopes, "paused_keys": paused,
         "refusal": refusal},
    )


@require_POST
@membership_required
def api_keys_pause_on_runaway(request):
    org = request.membership.org
    enabled = request.POST.get("enabled") == "1"
    try:
        org_services.org_pause_on_runaway_set(org=org, enabled=enabled, user=request.user)
    except TollgateError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "Pause on runaway is on: a key spending far above its usual rate is paused."
                         if enabled else "Pause on runaway is off: runaway usage is only reported.")
    return redirect("keys:list")


@require_POST
@membership_required
def api_key_revoke(request, prefix: str):
    org = request.membership.org
    key = get_object_or_404(OrgAPIKey, org=org, prefix=prefix)
    try:
        services.api_key_revoke(org=org, key=key, actor=request.user)
    except TollgateError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Key “{key.name}” ({key.prefix}…) is revoked; calls with it now fail.")
    return redirect("keys:list")
