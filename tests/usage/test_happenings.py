"""The usage-happenings seam: receivers hear a happening once, after commit, and a
receiver that raises does not stop the others."""

import pytest
from django.db import transaction

from usage import happenings

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def heard():
    got: list[happenings.Happening] = []

    def receiver(happening: happenings.Happening) -> None:
        got.append(happening)

    def broken(happening: happenings.Happening) -> None:
        raise RuntimeError("a receiver that fails")

    happenings.receiver_register(broken)
    happenings.receiver_register(receiver)
    happenings.receiver_register(receiver)  # twice is once
    yield got
    happenings.receiver_unregister(broken)
    happenings.receiver_unregister(receiver)


def test_a_happening_reaches_receivers_after_commit_only(heard):
    happening = happenings.Happening(org_id=1, type="usage.unusual", key="k1", data={"spend": "12.5"})
    with transaction.atomic():
        happenings.happening_announce(happening)
        assert heard == []
    assert heard == [happening]


def test_a_rolled_back_happening_reaches_nobody(heard):
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        happenings.happening_announce(happenings.Happening(org_id=1, type="usage.paused", key="k2"))
        1 / 0
    assert heard == []
