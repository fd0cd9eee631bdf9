"""Forms for the clinician pages. They collect input only: every rule lives in the services.

``PatientForm`` and ``SpecimenForm`` take their fields from the models (labels, lengths, choices
stay in one place); the view hands ``cleaned_data`` to the service and maps the service's
``ValidationError`` back onto the form (``ServiceErrorsMixin``). ``SmearUploadForm`` only
gathers the files: ``services.smear_images_upload`` checks each one and its messages are shown
on the form.
"""

from django import forms
from django.core.exceptions import ValidationError

from .models import Lab, Patient, Specimen
from .services import PATIENT_FIELDS, SPECIMEN_FIELDS

_patient_fields = forms.fields_for_model(Patient, fields=PATIENT_FIELDS)
_specimen_fields = forms.fields_for_model(Specimen, fields=SPECIMEN_FIELDS)


class ServiceErrorsMixin:
    def add_service_error(self, exc: ValidationError) -> None:
        """Put a service's ``ValidationError`` on the matching fields (the rest on the form)."""
        if not hasattr(exc, "error_dict"):
            self.add_error(None, exc)
            return
        for name, errors in exc.error_dict.items():
            for error in errors:
                field = name
                messages = error.messages
                if error.code == "duplicate_record_number":
                    messages = [duplicate_record_message(self.data.get("record_number", ""))]
                self.add_error(field if field in self.fields else None, messages)


class PatientForm(ServiceErrorsMixin, forms.Form):
    lab = forms.ModelChoiceField(
        queryset=Lab.objects.none(), required=False, help_text="The lab the patient belongs to."
    )
    record_number = _patient_fields["record_number"]
    display_label = _patient_fields["display_label"]
    sex = _patient_fields["sex"]
    birth_year = _patient_fields["birth_year"]

    def __init__(self, *args, labs=None, **kwargs):
        super().__init__(*args, **kwargs)
        labs = labs if labs is not None else Lab.objects.none()
        if len(labs) > 1:  # several labs: ask which one; one lab: nothing to ask
            self.fields["lab"].queryset = labs
            self.fields["lab"].required = True
        else:
            del self.fields["lab"]
            self.lab = labs[0] if len(labs) else None
        self.fields["record_number"].label = "Record number"
        self.fields["record_number"].widget.attrs.update(
            {"autocomplete": "off", "spellcheck": "false", "autofocus": True}
        )
        self.fields["display_label"].label = "Display label"
        self.fields["display_label"].widget.attrs.update(
            {"autocomplete": "off", "placeholder": "Patient A-17"}
        )
        self.fields["birth_year"].widget.attrs.update(
            {"inputmode": "numeric", "placeholder": "e.g. 2015"}
        )
        self.fields["birth_year"].help_text = "A year between 1900 and 2100."

    def clean(self):
        data = super().clean()
        data["lab"] = data.get("lab") or getattr(self, "lab", None)
        return data


def duplicate_record_message(record_number: str) -> str:
    return (
        f"Record number “{record_number.strip()}” is already registered in this lab: check the "
        "number, or open the existing patient."
    )


class SpecimenForm(ServiceErrorsMixin, forms.Form):
    accession_number = _specimen_fields["accession_number"]
    collection_date = _specimen_fields["collection_date"]
    specimen_type = _specimen_fields["specimen_type"]
    clinical_question = _specimen_fields["clinical_question"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["accession_number"].widget.attrs.update(
            {"autocomplete": "off", "spellcheck": "false"}
        )
        self.fields["collection_date"].widget = forms.DateInput(attrs={"type": "date"})
        self.fields["clinical_question"].widget.attrs.update(
            {"rows": 2, "placeholder": "e.g. lymphoblasts on a routine count; classify"}
        )


class MultipleFileInput(forms.FileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """A file field that cleans to a list of uploaded files (Django's "Uploading multiple files").

    Empty files are let through on purpose: the upload service rejects them with its own message,
    so every rule is written once.
    """

    default_error_messages = {"required": "Choose at least one image file."}

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": "image/*"}))
        kwargs.setdefault("allow_empty_file", True)
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        files = [f for f in (data if isinstance(data, list | tuple) else [data]) if f]
        if not files:
            if self.required:
                raise ValidationError(self.error_messages["required"], code="required")
            return []
        single_file_clean = super().clean
        return [single_file_clean(f, initial) for f in files]


class SmearUploadForm(forms.Form):
    images = MultipleFileField(
        label="Image files",
        help_text="Select one or more images (JPEG, PNG, TIFF or BMP). Each file is checked "
        "separately; valid files are stored even if another one is rejected.",
    )


class VerdictForm(forms.Form):
    """A verdict from a page without JavaScript (the review queue posts to the API)."""

    kind = forms.ChoiceField(choices=[])
    label = forms.CharField(required=False, max_length=32)
    reason = forms.CharField(required=False, max_length=2000)
    na_reason = forms.CharField(required=False, max_length=32)
    comment = forms.CharField(required=False, max_length=2000, widget=forms.Textarea({"rows": 2}))
    # The result the page showed: a newer one refuses the verdict (services.verdict_record).
    prediction = forms.IntegerField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        from .models import Verdict

        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = Verdict.Kind.choices

    def clean(self):
        data = super().clean()
        na_reason = data.pop("na_reason", "")
        data["seen_prediction_id"] = data.pop("prediction", None)
        if data.get("kind") == "not_assessable":
            data["reason"] = na_reason
        return data


class SignOffForm(forms.Form):
    interpretation = forms.ChoiceField(label="Final interpretation", choices=[])
    comment = forms.CharField(required=False, max_length=4000, widget=forms.Textarea({"rows": 3}))
    reason = forms.CharField(
        label="Reason for the amendment",
        required=False,
        max_length=2000,
        widget=forms.Textarea({"rows": 2}),
    )
    # The case as the signer read it (selectors.review.specimen_sign_state): a signature over a
    # case that moved since is refused.
    seen_verdict = forms.IntegerField(required=False, widget=forms.HiddenInput)
    seen_version = forms.IntegerField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, amending=False, **kwargs):
        from .models import SignOff

        super().__init__(*args, **kwargs)
        self.fields["interpretation"].choices = [
            ("", "— choose —"),
            *SignOff.Interpretation.choices,
        ]
        if amending:
            self.fields["reason"].required = True
        else:
            del self.fields["reason"]


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=[])

    def __init__(self, *args, **kwargs):
        from .models import Membership

        super().__init__(*args, **kwargs)
        self.fields["role"].choices = Membership.Role.choices
