"""Human review through the API: the queue, verdicts, and the lab's QA and members."""

from django.contrib.auth import get_user_model
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import selectors, services
from ..flags import REASONS
from ..flags import reason as flag_reason
from ..models import AuditEvent, Membership, Verdict
from ..roles import Capability, require
from ..selectors.qa import lab_concordance
from ..selectors.review import review_queue
from .common import FORBIDDEN, NOT_FOUND, REFUSED, VALIDATION_ERROR, ServiceErrorsMixin

EventType = AuditEvent.EventType
QUEUE_LIMIT = 500


class FlagSerializer(serializers.Serializer):
    reason = serializers.CharField(help_text="A flag reason code, e.g. `split_vote`.")
    label = serializers.SerializerMethodField()
    detail = serializers.CharField()

    class Meta:
        ref_name = "Flag"

    def get_label(self, flag) -> str:
        return flag_reason(flag.reason).label


class VerdictOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    image_id = serializers.IntegerField()
    prediction_id = serializers.IntegerField(allow_null=True)
    kind = serializers.ChoiceField(choices=Verdict.Kind.choices)
    label = serializers.CharField(help_text="The verified class; empty when none was chosen.")
    reason = serializers.CharField()
    comment = serializers.CharField()
    reviewer = serializers.CharField(source="reviewer.get_username")
    reviewer_role = serializers.CharField()
    created_at = serializers.DateTimeField()

    class Meta:
        ref_name = "Verdict"


class ReviewItemSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    page_url = serializers.SerializerMethodField()
    file_url = serializers.SerializerMethodField()
    status = serializers.CharField()
    specimen = serializers.SerializerMethodField()
    flags = FlagSerializer(many=True, source="current_flags")
    prediction = serializers.SerializerMethodField()

    class Meta:
        ref_name = "ReviewQueueItem"

    def get_page_url(self, image) -> str:
        return reverse("cases:image-detail", args=[image.pk])

    def get_file_url(self, image) -> str:
        return reverse("cases:image-file", args=[image.pk])

    def get_specimen(self, image) -> dict:
        return {"id": image.specimen_id, "accession_number": image.specimen.accession_number}

    def get_prediction(self, image) -> dict | None:
        p = next(iter(image.predictions.all()), None) if image.status == "done" else None
        if p is None:
            return None
        return {
            "id": p.pk,
            "label": p.shown_label,  # None: outside the model's domain, the label is withheld
            "out_of_domain": p.out_of_domain,
            "ood_score": p.ood_score,
            "votes": p.votes,
            "member_count": p.member_count,
            "agreement": p.agreement,
            "probabilities": p.probabilities,
            "members": [
                {"name": m.member_name, "label": m.label, "probabilities": m.probabilities}
                for m in p.member_votes.all()
            ],
            "model_version": p.model_version.label,
            "is_demo": p.model_version.is_demo,
        }


class ReviewQueueSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="Images in the whole queue.")
    results = ReviewItemSerializer(many=True)

    class Meta:
        ref_name = "ReviewQueue"


class ReviewQueueApi(ServiceErrorsMixin, APIView):
    class FilterSerializer(serializers.Serializer):
        reason = serializers.ChoiceField(choices=[], required=False, allow_blank=True, default="")
        specimen = serializers.IntegerField(required=False, allow_null=True, default=None)

        class Meta:
            ref_name = "ReviewQueueFilter"

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.fields["reason"].choices = sorted(REASONS)

    @extend_schema(
        summary="The review queue: images awaiting a verdict",
        responses={200: ReviewQueueSerializer},
        tags=["review"],
        description=f"Images of your labs (where you may verify) that are classified or "
        f"failed, in specimens not signed out, with no verdict yet: flagged ones first, then "
        f"oldest first. At most {QUEUE_LIMIT}; `count` is the whole queue.",
        parameters=[FilterSerializer],
    )
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        queue = review_queue(
            user=request.user,
            reason=filters.validated_data["reason"],
            specimen_id=filters.validated_data["specimen"],
        ).prefetch_related("predictions__member_votes")
        items = list(queue[:QUEUE_LIMIT])
        services.audit_read(
            request=request,
            event_type=EventType.REVIEW_QUEUE_VIEWED,
            extra={"images": [i.pk for i in items], **filters.validated_data},
        )
        return Response(
            {
                "count": queue.count(),
                "results": ReviewItemSerializer(items, many=True).data,
            }
        )


class ImageVerdictListApi(ServiceErrorsMixin, APIView):
    @extend_schema(
        summary="An image's verdicts, newest (current) first",
        tags=["review"],
        responses={200: VerdictOutputSerializer(many=True), 404: NOT_FOUND},
    )
    def get(self, request, pk):
        image = selectors.image_get(user=request.user, pk=pk)
        services.audit_read(request=request, event_type=EventType.IMAGE_VIEWED, image=image)
        return Response(VerdictOutputSerializer(image.verdict_history, many=True).data)


class ImageVerdictCreateApi(ServiceErrorsMixin, APIView):
    class InputSerializer(serializers.Serializer):
        kind = serializers.ChoiceField(choices=Verdict.Kind.choices)
        label = serializers.CharField(
            required=False, allow_blank=True, default="", help_text="For `reclassify`."
        )
        reason = serializers.CharField(
            required=False,
            allow_blank=True,
            default="",
            help_text="Required to reclassify or exclude; for `not_assessable` one of "
            + ", ".join(Verdict.NotAssessableReason.values)
            + ".",
        )
        comment = serializers.CharField(required=False, allow_blank=True, default="")
        prediction = serializers.IntegerField(
            required=False,
            allow_null=True,
            default=None,
            help_text="The id of the result the reviewer judged (the queue's `prediction.id`). "
            "When the image has a newer result, nothing is recorded (409).",
        )

        class Meta:
            ref_name = "VerdictInput"

    @extend_schema(
        summary="Record a verdict on an image",
        tags=["review"],
        description="Confirm the model's label, reclassify (a reason is required), mark not "
        "assessable, or exclude from the case. A new verdict supersedes the earlier one, "
        "which stays. A technologist or hematologist of the lab; not once the specimen is "
        "signed out (400), nor on a result that is no longer the image's latest (409).",
        request=InputSerializer,
        responses={
            201: VerdictOutputSerializer,
            400: VALIDATION_ERROR,
            403: FORBIDDEN,
            404: NOT_FOUND,
            409: REFUSED,
        },
    )
    def post(self, request, pk):
        image = selectors.image_get(user=request.user, pk=pk)
        require(request.user, image.patient.lab_id, Capability.VERIFY)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        verdict = services.verdict_record(
            image=image,
            user=request.user,
            address=services.request_address(request),
            seen_prediction_id=data.pop("prediction"),
            **data,
        )
        return Response(VerdictOutputSerializer(verdict).data, status=status.HTTP_201_CREATED)


class LabListApi(ServiceErrorsMixin, APIView):
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        name = serializers.CharField()
        qa_url = serializers.HyperlinkedIdentityField(view_name="api:lab-qa")
        members_url = serializers.HyperlinkedIdentityField(view_name="api:lab-members")

        class Meta:
            ref_name = "Lab"

    @extend_schema(summary="Your labs", tags=["labs"], responses={200: OutputSerializer(many=True)})
    def get(self, request):
        labs = selectors.lab_list(user=request.user)
        return Response(self.OutputSerializer(labs, many=True, context={"request": request}).data)


class LabQAApi(ServiceErrorsMixin, APIView):
    class FilterSerializer(serializers.Serializer):
        version = serializers.IntegerField(required=False, allow_null=True, default=None)
        date_from = serializers.DateField(required=False, allow_null=True, default=None)
        date_to = serializers.DateField(required=False, allow_null=True, default=None)

        class Meta:
            ref_name = "LabQAFilter"

    @extend_schema(
        summary="The lab's agreement between model and reviewers",
        tags=["labs"],
        description="Over the current verdicts that verified a class: the confusion matrix "
        "(rows: verified label, columns: model label), agreement with its 95% Wilson interval, "
        "Cohen's kappa, per-class agreement, and a warning when agreement is below the "
        "version's measured accuracy by more than the interval. Hematologists and lab "
        "managers of the lab.",
        parameters=[FilterSerializer],
        responses={403: FORBIDDEN, 404: NOT_FOUND},
    )
    def get(self, request, pk):
        from inference.models import ModelVersion

        lab = selectors.lab_get(user=request.user, pk=pk)
        require(request.user, lab, Capability.QA)
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        version = None
        if data["version"] is not None:
            version = ModelVersion.objects.filter(version=data["version"]).first()
            if version is None:
                raise serializers.ValidationError({"version": ["No such model version."]})
        qa = lab_concordance(
            lab=lab, version=version, date_from=data["date_from"], date_to=data["date_to"]
        )
        services.audit_read(
            request=request,
            event_type=EventType.QA_VIEWED,
            lab=lab,
            extra={"version": data["version"], "images": qa.images},
        )
        return Response(
            {
                "lab": lab.name,
                "model_version": data["version"],
                "classes": qa.classes,
                "images": qa.images,
                "agreed": qa.agreed,
                "agreement": qa.agreement,
                "agreement_ci95": list(qa.interval) if qa.interval else None,
                "cohen_kappa": qa.kappa,
                "confusion_matrix": qa.matrix,
                "per_class": qa.per_class,
                "version_accuracy": qa.version_accuracy,
                "warning": qa.warning,
            }
        )


class LabMemberListApi(ServiceErrorsMixin, APIView):
    class OutputSerializer(serializers.Serializer):
        user_id = serializers.IntegerField()
        username = serializers.CharField(source="user.get_username")
        role = serializers.ChoiceField(choices=Membership.Role.choices)

        class Meta:
            ref_name = "LabMember"

    @extend_schema(
        summary="The lab's members and their roles",
        tags=["labs"],
        responses={200: OutputSerializer(many=True), 404: NOT_FOUND},
    )
    def get(self, request, pk):
        lab = selectors.lab_get(user=request.user, pk=pk)
        members = Membership.objects.filter(lab=lab).select_related("user").order_by("id")
        return Response(self.OutputSerializer(members, many=True).data)


class LabMemberSetApi(ServiceErrorsMixin, APIView):
    class InputSerializer(serializers.Serializer):
        username = serializers.CharField()
        role = serializers.ChoiceField(choices=Membership.Role.choices)
        remove = serializers.BooleanField(default=False, help_text="Remove the member instead.")

        class Meta:
            ref_name = "LabMemberInput"

    @extend_schema(
        summary="Add a member, change a role, or remove a member",
        tags=["labs"],
        description="The lab's manager (or a staff admin). A lab keeps at least one manager or "
        "hematologist (400).",
        request=InputSerializer,
        responses={
            200: LabMemberListApi.OutputSerializer(many=True),
            400: VALIDATION_ERROR,
            403: FORBIDDEN,
            404: NOT_FOUND,
        },
    )
    def post(self, request, pk):
        lab = selectors.lab_get(user=request.user, pk=pk)
        require(request.user, lab, Capability.MANAGE)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        user = get_user_model().objects.filter(username=data["username"], is_active=True).first()
        if user is None:
            raise serializers.ValidationError({"username": ["No active account has it."]})
        address = services.request_address(request)
        if data["remove"]:
            services.membership_remove(lab=lab, user=user, by=request.user, address=address)
        else:
            services.membership_set(
                lab=lab, user=user, role=data["role"], by=request.user, address=address
            )
        members = Membership.objects.filter(lab=lab).select_related("user").order_by("id")
        return Response(LabMemberListApi.OutputSerializer(members, many=True).data)
