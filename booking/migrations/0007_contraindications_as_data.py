"""Contraindications become the clinic's own list (``Contraindication``), answered per decision
(``ContraindicationAnswer``); the six yes/no fields of a decision are copied into answers,
recorded by whoever decided and when, before the fields go. Also: allergies on the patient, and
who took an escort's details."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

# The defaults as they stood when this migration was written (booking.defaults may change).
DEFAULTS = (
    ("uncontrolled_hypertension", "Uncontrolled high blood pressure"),
    ("psychosis_history", "History of psychosis"),
    ("pregnancy", "Pregnancy"),
    ("recent_cardiac_event", "Recent heart attack, stroke or other cardiac event"),
    ("substance_use_concern", "Active substance use"),
    ("anaesthesia_reaction", "Past serious reaction to ketamine or an anaesthetic"),
    ("arrhythmia", "Arrhythmia"),
    ("seizure_disorder", "Seizure disorder"),
    ("raised_intracranial_pressure", "Raised intracranial or intraocular pressure"),
    ("mania", "Current or recent mania"),
    ("breastfeeding", "Breastfeeding"),
)
OLD_FIELDS = tuple(slug for slug, _ in DEFAULTS[:6])


def answers_copy(apps, schema_editor):
    Contraindication = apps.get_model("booking", "Contraindication")
    Answer = apps.get_model("booking", "ContraindicationAnswer")
    Decision = apps.get_model("booking", "EligibilityDecision")
    items = {
        slug: Contraindication.objects.create(slug=slug, label=label, position=n)
        for n, (slug, label) in enumerate(DEFAULTS)
    }
    batch = []
    for decision in Decision.objects.order_by("pk").iterator(chunk_size=2000):
        batch += [
            Answer(
                patient_id=decision.patient_id,
                decision_id=decision.pk,
                contraindication=items[slug],
                present=getattr(decision, slug),
                recorded_by_id=decision.decided_by_id,
                recorded_at=decision.decided_at,
            )
            for slug in OLD_FIELDS
        ]
        if len(batch) >= 6000:
            Answer.objects.bulk_create(batch)
            batch = []
    Answer.objects.bulk_create(batch)


def answers_restore(apps, schema_editor):
    Answer = apps.get_model("booking", "ContraindicationAnswer")
    Decision = apps.get_model("booking", "EligibilityDecision")
    for decision in Decision.objects.order_by("pk").iterator(chunk_size=2000):
        found = dict(
            Answer.objects.filter(
                decision_id=decision.pk, contraindication__slug__in=OLD_FIELDS
            ).values_list("contraindication__slug", "present")
        )
        for slug in OLD_FIELDS:
            setattr(decision, slug, found.get(slug, False))
        decision.save(update_fields=list(OLD_FIELDS))


class Migration(migrations.Migration):

    dependencies = [
        ('booking', '0006_waitlist_offer_channels'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='Contraindication',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('slug', models.SlugField(max_length=64, unique=True)),
                ('label', models.CharField(max_length=200)),
                ('position', models.PositiveSmallIntegerField(default=0)),
                ('is_active', models.BooleanField(default=True)),
            ],
            options={
                'ordering': ['position', 'id'],
            },
        ),
        migrations.AddField(
            model_name='appointment',
            name='escort_recorded_by',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='patient',
            name='allergies',
            field=models.TextField(blank=True),
        ),
        migrations.AddField(
            model_name='patient',
            name='allergies_recorded_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='patient',
            name='allergies_recorded_by',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.CreateModel(
            name='ContraindicationAnswer',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('present', models.BooleanField()),
                ('note', models.CharField(blank=True, max_length=500)),
                ('recorded_at', models.DateTimeField()),
                ('contraindication', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='answers', to='booking.contraindication')),
                ('decision', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='answers', to='booking.eligibilitydecision')),
                ('patient', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='contraindication_answers', to='booking.patient')),
                ('recorded_by', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['contraindication__position', 'contraindication_id', 'recorded_at'],
                'indexes': [models.Index(fields=['patient', 'recorded_at'], name='booking_con_patient_6f21b2_idx')],
                'constraints': [models.UniqueConstraint(condition=models.Q(('decision__isnull', False)), fields=('decision', 'contraindication'), name='contraindication_answered_once')],
            },
        ),
        migrations.RunPython(answers_copy, answers_restore),
        # A default first, so that going back can add the columns to rows that exist.
        *(
            migrations.AlterField(
                model_name="eligibilitydecision", name=name, field=models.BooleanField(default=False)
            )
            for name in OLD_FIELDS
        ),
        migrations.RemoveField(
            model_name='eligibilitydecision',
            name='anaesthesia_reaction',
        ),
        migrations.RemoveField(
            model_name='eligibilitydecision',
            name='pregnancy',
        ),
        migrations.RemoveField(
            model_name='eligibilitydecision',
            name='psychosis_history',
        ),
        migrations.RemoveField(
            model_name='eligibilitydecision',
            name='recent_cardiac_event',
        ),
        migrations.RemoveField(
            model_name='eligibilitydecision',
            name='substance_use_concern',
        ),
        migrations.RemoveField(
            model_name='eligibilitydecision',
            name='uncontrolled_hypertension',
        ),
    ]
