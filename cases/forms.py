"""Forms for the clinician pages. They collect input only: every rule lives in the services.

``PatientForm`` takes its fields from the model (labels, lengths, choices stay in one place); the
view hands ``cleaned_data`` to ``services.patient_create`` / ``patient_update`` and maps the
service's ``ValidationError`` back onto the form. ``SmearUploadForm`` only gathers the files:
``services.smear_images_upload`` checks each one and its messages are shown on the form.
"""

from django import forms
from django.core.exceptions import ValidationError

from .models import Patient
from .services import PATIENT_FIELDS

_patient_fields = forms.fields_for_model(Patient, fields=PATIENT_FIELDS)


class PatientForm(forms.Form):
    record_number = _patient_fields["record_number"]
    display_label = _patient_fields["display_label"]
    sex = _patient_fields["sex"]
    birth_year = _patient_fields["birth_year"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
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

    def add_service_error(self, exc: ValidationError) -> None:
        """Put a service's ``ValidationError`` on the matching fields (the rest on the form)."""
        if not hasattr(exc, "error_dict"):
            self.add_error(None, exc)
            return
        for name, errors in exc.error_dict.items():
            field = name if name in self.fields else None
            messages = []
            for error in errors:
                if name == "record_number" and error.code == "unique":
                    messages.append(duplicate_record_message(self.data.get("record_number", "")))
                else:
                    messages.extend(error.messages)
            self.add_error(field, messages)


def duplicate_record_message(record_number: str) -> str:
    return (
        f"Record number “{record_number.strip()}” is already registered in this portal "
        "(possibly by another clinician). Record numbers are unique in the institution: "
        "check the number, or open the existing patient."
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
