"""The projection's rules, as pure functions: changes in order rebuild a profile's view,
merges fold profiles together, deletions wipe, snapshots only seed."""

from __future__ import annotations

from typing import Any

import pytest

from itinera.common.projection import event_problems, plan, set_path

A, B, C = (f"00000000-0000-0000-0000-00000000000{n}" for n in (1, 2, 3))


def change(
    profile: str, *changes: tuple[str, Any], merged: tuple[str, ...] = (), **extra: Any
) -> tuple[str, Any]:
    return (
        "change",
        {
            "profileId": profile,
            "changes": [{"path": p, "old": None, "new": v} for p, v in changes],
            "mergedProfileIds": list(merged),
            **extra,
        },
    )


def event(profile: str, event_id: str, snapshot: dict[str, Any] | None = None) -> tuple[str, Any]:
    body = {"_id": event_id, "timestamp": "2026-11-28T10:00:00Z", "eventType": "x"}
    return ("event", {"profileId": profile, "event": body, "profile": snapshot or {}})


class TestPaths:
    def test_setting_a_path_builds_the_objects_on_the_way(self) -> None:
        target: dict[str, Any] = {}
        set_path(target, "person.name.firstName", "Ann")
        assert target == {"person": {"name": {"firstName": "Ann"}}}

    def test_removing_a_path_removes_the_objects_it_leaves_empty(self) -> None:
        target = {"person": {"name": {"firstName": "Ann"}, "gender": "f"}}
        set_path(target, "person.name.firstName", None)
        assert target == {"person": {"gender": "f"}}

    def test_removing_through_a_value_that_is_not_an_object_changes_nothing(self) -> None:
        target = {"person": "Ann"}
        set_path(target, "person.name.firstName", None)
        assert target == {"person": "Ann"}


class TestPlan:
    def test_changes_apply_in_order(self) -> None:
        result = plan(
            {}, [change(A, ("person.name.firstName", "Ann")), change(A, ("person.name.firstName", "Anna"))]
        )
        assert result.profiles == {A: {"person": {"name": {"firstName": "Anna"}}}}
        assert result.touched == {A: {"person.name.firstName"}}

    def test_a_snapshot_seeds_a_profile_not_seen_but_never_overrides_one_known(self) -> None:
        seeded = plan({}, [event(A, "e1", {"loyalty": {"tier": "gold"}})])
        assert seeded.profiles == {A: {"loyalty": {"tier": "gold"}}}
        known = plan({A: {"loyalty": {"tier": "platinum"}}}, [event(A, "e2", {"loyalty": {"tier": "gold"}})])
        assert known.profiles == {A: {"loyalty": {"tier": "platinum"}}}
        assert [e.event_id for e in known.events] == ["e2"]

    def test_a_merge_folds_the_merged_profiles_into_the_survivor_before_the_change(self) -> None:
        result = plan(
            {A: {"person": {"name": {"firstName": "Ann"}}}, B: {"loyalty": {"tier": "gold"}}},
            [change(B, ("homeAddress.city", "Lyon"), merged=(A,))],
        )
        assert result.profiles == {
            B: {
                "person": {"name": {"firstName": "Ann"}},
                "loyalty": {"tier": "gold"},
                "homeAddress": {"city": "Lyon"},
            }
        }
        assert result.merged == {A: B}

    def test_events_of_a_profile_merged_later_in_the_batch_follow_the_survivor(self) -> None:
        result = plan({}, [event(A, "e1"), change(B, merged=(A,)), change(C, merged=(B,))])
        assert result.merged == {A: C, B: C}
        assert [(e.event_id, e.profile_id) for e in result.events] == [("e1", C)]
        assert set(result.profiles) == {C}

    def test_a_deletion_wipes_what_came_before_it_and_keeps_what_came_after(self) -> None:
        result = plan(
            {A: {"a": 1}}, [event(A, "before"), change(A, deleted=True), event(A, "after", {"b": 2})]
        )
        assert result.deleted == {A}
        assert [e.event_id for e in result.events] == ["after"]
        assert result.profiles == {A: {"b": 2}}

    def test_an_event_without_a_usable_timestamp_is_not_kept(self) -> None:
        record = ("event", {"profileId": A, "event": {"_id": "e", "timestamp": "yesterday"}, "profile": {}})
        assert plan({}, [record]).events == []


class TestEventsAConsumerRefuses:
    def test_an_event_with_its_id_and_an_iso_time_passes(self) -> None:
        assert event_problems({"event": {"_id": "e", "timestamp": "2026-11-28T10:00:00.000Z"}}) == []
        assert event_problems({"event": {"_id": "e", "timestamp": "2026-11-28T10:00:00"}}) == []

    @pytest.mark.parametrize(
        ("data", "paths"),
        [
            ({}, ["/event"]),
            ({"event": "a purchase"}, ["/event"]),
            ({"event": {"timestamp": "2026-11-28T10:00:00Z"}}, ["/event/_id"]),
            ({"event": {"_id": "", "timestamp": "2026-11-28T10:00:00Z"}}, ["/event/_id"]),
            ({"event": {"_id": "e", "timestamp": "yesterday"}}, ["/event/timestamp"]),
            ({"event": {"_id": 7, "timestamp": 1764324000}}, ["/event/_id", "/event/timestamp"]),
        ],
    )
    def test_are_named_by_path(self, data: dict[str, Any], paths: list[str]) -> None:
        assert [p.path for p in event_problems(data)] == paths
