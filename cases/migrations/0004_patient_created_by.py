# A patient belongs to a lab from 0005 on; the user who registered it is kept as created_by.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("cases", "0003_store_pixels_only")]

    operations = [
        migrations.RemoveIndex(model_name="patient", name="cases_patie_owner_i_5ae82f_idx"),
        migrations.RenameField(model_name="patient", old_name="owner", new_name="created_by"),
    ]
