"""On-call for a small team: schedules (rotations, layers, overrides, calendars), heartbeats and
watching the providers themselves."""

from alertline.oncall.schedules import (
    SCHEDULE_PREFIX,
    OnCallView,
    Schedule,
    Schedules,
    schedule_name,
)

__all__ = ["SCHEDULE_PREFIX", "OnCallView", "Schedule", "Schedules", "schedule_name"]
