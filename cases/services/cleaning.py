"""Model validation for the services: constraint errors land on the field they are about."""

from django.core.exceptions import ValidationError

# A constraint's ``violation_error_code`` -> the field its message belongs to.
CONSTRAINT_FIELDS = {
    "duplicate_record_number": "record_number",
    "duplicate_accession_number": "accession_number",
}


def full_clean(obj) -> None:
    """``obj.full_clean()``, with a lab-unique constraint's error put on its field (Django puts
    a constraint over several fields on the whole form)."""
    try:
        obj.full_clean()
    except ValidationError as exc:
        errors: dict[str, list] = {}
        for name, found in exc.error_dict.items():
            for error in found:
                errors.setdefault(CONSTRAINT_FIELDS.get(error.code, name), []).append(error)
        raise ValidationError(errors) from exc
