from django import forms

from outbound.services import EVENT_TYPES


class EndpointForm(forms.Form):
    url = forms.CharField(label="URL", max_length=2000, widget=forms.TextInput(attrs={"inputmode": "url", 
        "placeholder": "https://platform.example/tollgate/events", "autocomplete": "off", "spellcheck": "false"}),
        help_text="Where Tollgate POSTs signed events. https only in production.")
    all_events = forms.BooleanField(label="Send every event type (now and future ones)", required=False, initial=True)
    events = forms.MultipleChoiceField(label="Or only these events", required=False,
                                       choices=[(t, t) for t in EVENT_TYPES], widget=forms.CheckboxSelectMultiple)
    description = forms.CharField(label="Description", max_length=200, required=False)

    def clean(self):
        data = super().clean()
        if not data.get("all_events") and not data.get("events"):
            raise forms.ValidationError("Choose at least one event type, or send every type.")
        data["events"] = ["*"] if data.get("all_events") else data["events"]
        return data
