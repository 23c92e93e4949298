"""The dispatch outcome's decisions: an expired alert's unsent delivery, and whether an item a
provider refused for load may wait for another try."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from alertline.engine.decisions import Advance
from alertline.engine.sending import EXPIRED_UNSENT, expiry_decision, may_wait
from alertline.model import DeliveryState
from tests.engine.conftest import T0, make_alert, make_delivery, make_record

MINUTE = timedelta(minutes=1)


def test_an_expired_alert_ends_its_unsent_deliveries() -> None:
    record = make_record(alert=make_alert(expires=T0))
    assert expiry_decision(record, make_delivery(), T0) == Advance(
        "al-1-1", DeliveryState.EXPIRED, T0, {"reason": EXPIRED_UNSENT})
    assert expiry_decision(record, make_delivery(), T0 - MINUTE) is None
    assert expiry_decision(make_record(), make_delivery(), T0 + 1000 * MINUTE) is None


@pytest.mark.parametrize(("deadline", "resumes", "outage", "elsewhere", "waits"), [
    (T0 + MINUTE, T0, False, False, True),         # a rate limit: wait
    (T0 + MINUTE, T0 + 2 * MINUTE, False, False, True),  # nowhere else to go: wait anyway
    (T0 + MINUTE, T0 + 2 * MINUTE, False, True, False),  # the pause outlasts it: move on
    (T0 + MINUTE, T0, True, True, False),          # a 503 may be an outage: move on
    (T0 + MINUTE, T0, True, False, True),          # ... unless nothing else can take it
    (T0, T0, False, False, False),                 # past the deadline: give up
])
def test_a_refused_item_waits_only_while_that_is_worth_it(
        deadline: datetime, resumes: datetime, outage: bool, elsewhere: bool,
        waits: bool) -> None:
    assert may_wait(now=T0, deadline=deadline, resumes=resumes, outage=outage,
                    elsewhere=elsewhere) is waits
