from django.apps import AppConfig


class InboxConfig(AppConfig):
    name = "inbox"
    verbose_name = "In-app notifications"

    def ready(self) -> None:
        # Imported here, not at the top: the channel writes a model, which loads
        # once the app registry is ready.
        from inbox.services import inbox_deliver
        from orgs.notifications import notification_channel_register

        notification_channel_register("in_app", inbox_deliver)
