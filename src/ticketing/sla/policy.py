"""An SLA policy as configured for a tenant: targets per priority, time base, pause statuses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class SlaPolicy:
    """Response and resolution targets in minutes per priority (`critical`, `high`, `medium`,
    `low`), counted in business hours of `timezone` when `business_hours_only`, in wall-clock
    time otherwise; both clocks stand still while a ticket's status is in `pause_statuses`."""

    id: str
    name: str
    response_minutes: Mapping[str, int]
    resolution_minutes: Mapping[str, int]
    business_hours_only: bool = True
    timezone: str = "UTC"
    pause_statuses: frozenset[str] = frozenset()
    default: bool = False
