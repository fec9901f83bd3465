"""What keeps a journey from being published: each problem found at its path, all of them
at once, and a complex journey that has none. No database: ``validation`` is pure."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from itinera.journeys.definitions.schemas import JourneyIn
from itinera.journeys.definitions.validation import ActionFacts, Known, Problem, validate

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
JOURNEY_ID = str(uuid.uuid4())
CRM = str(uuid.uuid4())
OTHER_JOURNEY = str(uuid.uuid4())
KNOWN = Known(
    journey_id=JOURNEY_ID,
    actions={CRM: ActionFacts(frozenset({"email", "orderId"}), frozenset({"tier", "points"}))},
    journeys=frozenset({OTHER_JOURNEY}),
)


def entry(next_: str | None = "done", **extra: Any) -> dict[str, Any]:
    return {"id": "start", "type": "event", "eventType": "commerce.purchases", "next": next_, **extra}


def end(node_id: str = "done") -> dict[str, Any]:
    return {"id": node_id, "type": "end"}


def document(*nodes: dict[str, Any], **properties: Any) -> dict[str, Any]:
    return {"name": "journey", "nodes": list(nodes), **properties}


def problems(body: dict[str, Any], known: Known = KNOWN, max_length: int = 2048) -> list[Problem]:
    return validate(JourneyIn.model_validate(body), known, now=NOW, max_expression_length=max_length)


def found(body: dict[str, Any], known: Known = KNOWN) -> set[tuple[str, str]]:
    """The (path, code) pairs of every problem."""
    return {(p.path, p.code) for p in problems(body, known)}


def complex_journey() -> dict[str, Any]:
    """Every kind of node, a loop through a wait, an action's response read downstream."""
    return document(
        entry("crm", condition="_journey.event.commerce.order.priceTotal > 100"),
        {
            "id": "crm",
            "type": "action",
            "actionId": CRM,
            "inputs": {
                "email": "personalEmail.address",
                "orderId": "_journey.event.commerce.order.purchaseID",
            },
            "errorPath": True,
            "errorNext": "fallback",
            "next": "tier",
        },
        {
            "id": "tier",
            "type": "condition",
            "branches": [
                {"name": "gold", "condition": '_journey.actions.crm.tier = "gold"', "next": "vip"},
                {"name": "many points", "condition": "_journey.actions.crm.points > 1000", "next": "welcome"},
            ],
            "otherwise": "welcome",
        },
        {
            "id": "vip",
            "type": "message",
            "channel": "email",
            "templateId": "vip-welcome",
            "context": {"tier": "_journey.actions.crm.tier", "firstName": "person.name.firstName"},
            "category": "transactional",
            "next": "opened",
        },
        {
            "id": "welcome",
            "type": "message",
            "channel": "email",
            "templateId": str(uuid.uuid4()),
            "timeout": "PT5M",
            "next": "opened",
        },
        {
            "id": "opened",
            "type": "waitForEvent",
            "reaction": {"messageNode": "welcome", "on": "opened"},
            "timeout": "P2D",
            "timeoutNext": "nudge",
            "next": "thanks",
        },
        {"id": "nudge", "type": "message", "channel": "sms", "templateId": "lib:nudge.v2", "next": "pause"},
        {"id": "pause", "type": "wait", "duration": "PT12H", "next": "opened"},
        {
            "id": "thanks",
            "type": "updateProfile",
            "updates": [{"path": "loyalty.engaged", "value": "true"}],
            "next": "later",
        },
        {
            "id": "later",
            "type": "wait",
            "until": "2026-12-24T09:00:00",
            "timeZone": "Europe/Paris",
            "next": "done",
        },
        {"id": "fallback", "type": "jump", "journeyId": OTHER_JOURNEY},
        end(),
        reentrance={"allowed": True, "waitSeconds": 600},
        exitCriteria=[
            {"type": "event", "name": "unsubscribed", "eventType": "message.unsubscribe"},
            {"type": "event", "name": "refund", "condition": '_journey.event.eventType = "commerce.refund"'},
            {"type": "audienceExit", "name": "churned", "audienceId": str(uuid.uuid4())},
        ],
        timeout="P30D",
        startAt=(NOW + timedelta(days=1)).isoformat(),
        endAt=(NOW + timedelta(days=60)).isoformat(),
    )


class TestAValidJourney:
    def test_a_complex_journey_has_no_problem(self) -> None:
        assert problems(complex_journey()) == []

    def test_each_entry_kind_makes_a_valid_journey(self) -> None:
        for start in (
            entry(),
            {"id": "start", "type": "audience", "audienceId": "a1", "on": "exited", "next": "done"},
            {"id": "start", "type": "readAudience", "audienceId": "a1", "next": "done"},
            {
                "id": "start",
                "type": "readAudience",
                "audienceId": "a1",
                "schedule": {
                    "frequency": "cron",
                    "expression": "0 9 * * MON-FRI",
                    "timeZone": "Europe/Paris",
                },
                "next": "done",
            },
            {
                "id": "start",
                "type": "readAudience",
                "audienceId": "a1",
                "schedule": {"frequency": "every", "interval": 6, "unit": "hours"},
                "rate": 200,
                "next": "done",
            },
        ):
            assert problems(document(start, end())) == [], start

    def test_a_missing_next_is_an_implicit_end(self) -> None:
        body = document(
            entry("check"),
            {
                "id": "check",
                "type": "condition",
                "branches": [{"name": "fr", "condition": 'homeAddress.countryCode = "FR"', "next": "hello"}],
            },
            {"id": "hello", "type": "message", "channel": "push", "templateId": "hello"},
        )
        assert problems(body) == []

    def test_a_loop_through_a_wait_is_allowed(self) -> None:
        body = document(
            entry("again"),
            {"id": "again", "type": "message", "channel": "email", "templateId": "t", "next": "nap"},
            {"id": "nap", "type": "wait", "duration": 86400, "next": "again"},
        )
        assert problems(body) == []


class TestTheReadme:
    def test_the_example_journey_of_the_readme_can_be_published(self) -> None:
        readme = (Path(__file__).parents[1] / "README.md").read_text()
        example = json.loads(re.findall(r"```json\n(.*?)```", readme, re.DOTALL)[0])
        known = Known(
            journey_id=JOURNEY_ID,
            actions={
                "6f1c9a54-2c1e-4d38-9b1e-0c5a1d2e3f40": ActionFacts(frozenset({"email"}), frozenset({"tier"}))
            },
            journeys=frozenset({"0b8e7c1a-5d2f-4e61-8a9b-3c4d5e6f7a8b"}),
        )
        assert problems(example, known) == []


class TestTheGraph:
    def test_no_entry(self) -> None:
        assert ("/nodes", "no-entry") in found(document(end()))

    def test_more_than_one_entry(self) -> None:
        second = {"id": "other", "type": "audience", "audienceId": "a1", "next": "done"}
        assert found(document(entry(), second, end())) == {("/nodes/1", "multiple-entries")}

    def test_an_unreachable_node(self) -> None:
        body = document(entry(), end(), {"id": "orphan", "type": "wait", "duration": 60, "next": "done"})
        assert found(body) == {("/nodes/2", "unreachable")}

    def test_links_to_nodes_that_do_not_exist(self) -> None:
        body = document(
            entry("split"),
            {
                "id": "split",
                "type": "condition",
                "branches": [{"name": "a", "condition": "true", "next": "nowhere"}],
                "otherwise": "gone",
            },
            {
                "id": "w",
                "type": "waitForEvent",
                "event": {"eventType": "x"},
                "timeout": 60,
                "timeoutNext": "lost",
            },
            {"id": "m", "type": "message", "channel": "email", "templateId": "t", "errorNext": "missing"},
        )
        assert {
            ("/nodes/1/branches/0/next", "unknown-node"),
            ("/nodes/1/otherwise", "unknown-node"),
            ("/nodes/2/timeoutNext", "unknown-node"),
            ("/nodes/3/errorNext", "unknown-node"),
        } <= found(body)

    def test_a_link_to_the_entry(self) -> None:
        body = document(entry("back"), {"id": "back", "type": "wait", "duration": 60, "next": "start"})
        assert found(body) == {("/nodes/1/next", "entry-target")}

    def test_duplicate_ids(self) -> None:
        assert ("/nodes/2/id", "duplicate-id") in found(document(entry(), end(), end()))

    def test_a_cycle_without_a_wait_is_reported_at_the_link_that_closes_it(self) -> None:
        body = document(
            entry("a"),
            {"id": "a", "type": "updateProfile", "updates": [{"path": "x", "value": "1"}], "next": "b"},
            {
                "id": "b",
                "type": "condition",
                "branches": [{"name": "loop", "condition": "true", "next": "a"}],
            },
        )
        (problem,) = problems(body)
        assert (problem.path, problem.code) == ("/nodes/2/branches/0/next", "cycle")
        assert "a -> b -> a" in problem.message

    def test_a_node_linking_to_itself_is_a_cycle(self) -> None:
        body = document(
            entry("a"), {"id": "a", "type": "message", "channel": "sms", "templateId": "t", "next": "a"}
        )
        assert found(body) == {("/nodes/1/next", "cycle")}


class TestBranches:
    def test_a_condition_branch_without_a_target(self) -> None:
        body = document(
            entry("c"),
            {
                "id": "c",
                "type": "condition",
                "branches": [{"name": "b", "condition": "true"}],
                "otherwise": "done",
            },
            end(),
        )
        assert found(body) == {("/nodes/1/branches/0/next", "missing-branch")}

    def test_a_condition_without_branches_and_branches_of_the_same_name(self) -> None:
        empty = document(entry("c"), {"id": "c", "type": "condition", "otherwise": "done"}, end())
        assert found(empty) == {("/nodes/1/branches", "required")}
        twice = document(
            entry("c"),
            {
                "id": "c",
                "type": "condition",
                "branches": [
                    {"name": "b", "condition": "true", "next": "done"},
                    {"name": "b", "condition": "false", "next": "done"},
                ],
            },
            end(),
        )
        assert found(twice) == {("/nodes/1/branches/1/name", "duplicate-name")}

    def test_an_error_path_declared_but_not_connected(self) -> None:
        body = document(
            entry("call"),
            {
                "id": "call",
                "type": "action",
                "actionId": CRM,
                "inputs": {"email": "e", "orderId": "o"},
                "errorPath": True,
            },
            {"id": "send", "type": "message", "channel": "email", "templateId": "t", "errorPath": True},
        )
        body["nodes"][1]["next"] = "send"
        assert found(body) == {
            ("/nodes/1/errorNext", "missing-branch"),
            ("/nodes/2/errorNext", "missing-branch"),
        }

    def test_an_error_branch_connected_but_not_declared(self) -> None:
        body = document(
            entry("send"),
            {"id": "send", "type": "message", "channel": "email", "templateId": "t", "errorNext": "done"},
            end(),
        )
        assert found(body) == {("/nodes/1/errorPath", "undeclared-branch")}

    def test_a_message_may_take_an_error_branch_on_a_delivery_failure_or_timeout(self) -> None:
        body = document(
            entry("send"),
            {
                "id": "send",
                "type": "message",
                "channel": "email",
                "templateId": "t",
                "errorPath": True,
                "errorNext": "sms",
                "timeout": "PT10M",
                "next": "done",
            },
            {"id": "sms", "type": "message", "channel": "sms", "templateId": "t", "next": "done"},
            end(),
        )
        assert problems(body) == []

    def test_a_timeout_without_its_branch_and_a_branch_without_a_timeout(self) -> None:
        body = document(
            entry("w1"),
            {"id": "w1", "type": "waitForEvent", "event": {"eventType": "x"}, "timeout": "P1D", "next": "w2"},
            {"id": "w2", "type": "waitForEvent", "event": {"eventType": "y"}, "timeoutNext": "done"},
            end(),
        )
        assert found(body) == {("/nodes/1/timeoutNext", "missing-branch"), ("/nodes/2/timeout", "required")}


class TestExpressions:
    def test_pql_problems_are_nested_under_the_node_with_their_position(self) -> None:
        body = document(
            entry("c"),
            {
                "id": "c",
                "type": "condition",
                "branches": [
                    {"name": "ok", "condition": "true", "next": "done"},
                    {"name": "bad", "condition": 'person.name = = "x"', "next": "done"},
                ],
            },
            end(),
        )
        (problem,) = problems(body)
        assert (problem.path, problem.code) == ("/nodes/1/branches/1/condition", "pql")
        position = problem.as_dict()["position"]
        assert (position["line"], position["column"], position["offset"]) == (1, 15, 14)

    def test_every_expression_is_checked(self) -> None:
        bad = "1 +"
        body = document(
            entry("m", condition=bad),
            {
                "id": "m",
                "type": "message",
                "channel": "email",
                "templateId": "t",
                "context": {"x": bad},
                "next": "a",
            },
            {
                "id": "a",
                "type": "action",
                "actionId": CRM,
                "inputs": {"email": bad, "orderId": "1"},
                "next": "u",
            },
            {"id": "u", "type": "updateProfile", "updates": [{"path": "p", "value": bad}], "next": "w"},
            {"id": "w", "type": "wait", "until": bad, "next": "e"},
            {"id": "e", "type": "waitForEvent", "event": {"condition": bad}},
            exitCriteria=[{"type": "event", "name": "x", "condition": bad}],
        )
        assert {path for path, code in found(body) if code == "pql"} == {
            "/nodes/0/condition",
            "/nodes/1/context/x",
            "/nodes/2/inputs/email",
            "/nodes/3/updates/0/value",
            "/nodes/4/until",
            "/nodes/5/event/condition",
            "/exitCriteria/0/condition",
        }

    def test_an_expression_longer_than_allowed(self) -> None:
        long = " or ".join(["true"] * 600)
        body = document(entry(condition=long), end())
        assert found(body) == {("/nodes/0/condition", "maxLength")}

    def test_a_branch_without_a_condition(self) -> None:
        body = document(
            entry("c"), {"id": "c", "type": "condition", "branches": [{"name": "b", "next": "done"}]}, end()
        )
        assert found(body) == {("/nodes/1/branches/0/condition", "required")}

    def test_action_responses_are_read_only_from_earlier_action_nodes_and_declared_fields(self) -> None:
        def reading(expression: str) -> dict[str, Any]:
            return document(
                entry("crm"),
                {
                    "id": "crm",
                    "type": "action",
                    "actionId": CRM,
                    "inputs": {"email": "e", "orderId": "o"},
                    "next": "c",
                },
                {
                    "id": "c",
                    "type": "condition",
                    "branches": [{"name": "b", "condition": expression, "next": "done"}],
                },
                end(),
            )

        assert found(reading('_journey.actions.crm.tier = "gold"')) == set()
        for expression in (
            "_journey.actions.crm.nope = 1",
            "_journey.actions.c.tier = 1",
            "_journey.actions.ghost.tier = 1",
        ):
            assert found(reading(expression)) == {("/nodes/2/branches/0/condition", "action-response")}
        assert found(reading("_journey.profile.x = 1")) == {
            ("/nodes/2/branches/0/condition", "journey-field")
        }
        before = document(
            entry("c"),
            {
                "id": "c",
                "type": "condition",
                "branches": [{"name": "b", "condition": "_journey.actions.crm.tier = 1", "next": "crm"}],
            },
            {"id": "crm", "type": "action", "actionId": CRM, "inputs": {"email": "e", "orderId": "o"}},
        )
        assert found(before) == {("/nodes/1/branches/0/condition", "action-response")}


class TestReferences:
    def test_an_unknown_custom_action(self) -> None:
        body = document(entry("a"), {"id": "a", "type": "action", "actionId": str(uuid.uuid4())})
        assert found(body) == {("/nodes/1/actionId", "unknown-action")}
        assert found(document(entry("a"), {"id": "a", "type": "action"})) == {
            ("/nodes/1/actionId", "required")
        }

    def test_the_inputs_of_an_action_match_its_parameters(self) -> None:
        body = document(
            entry("a"),
            {"id": "a", "type": "action", "actionId": CRM.upper(), "inputs": {"email": "e", "extra": "1"}},
        )
        assert found(body) == {
            ("/nodes/1/inputs", "missing-input"),
            ("/nodes/1/inputs/extra", "unknown-input"),
        }

    def test_template_references_are_checked_for_shape_only(self) -> None:
        body = document(
            entry("m1"),
            {
                "id": "m1",
                "type": "message",
                "channel": "email",
                "templateId": "not a template!",
                "next": "m2",
            },
            {"id": "m2", "type": "message", "channel": "email"},
        )
        assert found(body) == {("/nodes/1/templateId", "template"), ("/nodes/2/templateId", "required")}

    def test_jumps_lead_to_another_journey_of_the_sandbox(self) -> None:
        for target, code in (
            (JOURNEY_ID, "self-jump"),
            (str(uuid.uuid4()), "unknown-journey"),
            (None, "required"),
        ):
            body = document(entry("j"), {"id": "j", "type": "jump", "journeyId": target})
            assert found(body) == {("/nodes/1/journeyId", code)}

    def test_a_reaction_waits_on_an_earlier_message_of_a_channel_that_has_it(self) -> None:
        def waiting(message_node: str, on: str = "opened", channel: str = "email") -> dict[str, Any]:
            return document(
                entry("m"),
                {"id": "m", "type": "message", "channel": channel, "templateId": "t", "next": "r"},
                {
                    "id": "r",
                    "type": "waitForEvent",
                    "reaction": {"messageNode": message_node, "on": on},
                    "next": "late",
                },
                {"id": "late", "type": "message", "channel": "email", "templateId": "t"},
            )

        assert found(waiting("m")) == set()
        assert found(waiting("ghost")) == {("/nodes/2/reaction/messageNode", "unknown-node")}
        assert found(waiting("start")) == {("/nodes/2/reaction/messageNode", "not-a-message")}
        assert found(waiting("late")) == {("/nodes/2/reaction/messageNode", "not-earlier")}
        assert found(waiting("m", "opened", "sms")) == {("/nodes/2/reaction/on", "reaction")}
        assert found(waiting("m", "clicked", "webhook")) == {("/nodes/2/reaction/on", "reaction")}

    def test_a_wait_for_event_waits_for_one_thing(self) -> None:
        both = document(
            entry("m"),
            {"id": "m", "type": "message", "channel": "email", "templateId": "t", "next": "r"},
            {
                "id": "r",
                "type": "waitForEvent",
                "reaction": {"messageNode": "m", "on": "clicked"},
                "event": {"eventType": "x"},
            },
        )
        neither = document(entry("r"), {"id": "r", "type": "waitForEvent"})
        empty_event = document(entry("r"), {"id": "r", "type": "waitForEvent", "event": {}})
        assert found(both) == {("/nodes/2", "one-of")}
        assert found(neither) == {("/nodes/1", "one-of")}
        assert found(empty_event) == {("/nodes/1/event", "required")}

    def test_system_attributes_cannot_be_updated(self) -> None:
        body = document(
            entry("u"),
            {"id": "u", "type": "updateProfile", "updates": [{"path": "identityMap.Email", "value": "1"}]},
        )
        assert found(body) == {("/nodes/1/updates/0/path", "read-only")}
        assert found(document(entry("u"), {"id": "u", "type": "updateProfile"})) == {
            ("/nodes/1/updates", "required")
        }


class TestTimes:
    def test_a_wait_has_a_duration_or_an_until(self) -> None:
        for wait in ({}, {"duration": 60, "until": "2027-01-01T00:00:00Z"}):
            body = document(entry("w"), {"id": "w", "type": "wait", **wait})
            assert found(body) == {("/nodes/1", "one-of")}

    def test_waits_and_timeouts_fit_in_the_journeys_timeout(self) -> None:
        body = document(
            entry("w"),
            {"id": "w", "type": "wait", "duration": "P3D", "next": "e"},
            {
                "id": "e",
                "type": "waitForEvent",
                "event": {"eventType": "x"},
                "timeout": "P2DT1S",
                "timeoutNext": "m",
            },
            {"id": "m", "type": "message", "channel": "email", "templateId": "t", "timeout": "P1D"},
            timeout="P2D",
        )
        assert found(body) == {("/nodes/1/duration", "too-long"), ("/nodes/2/timeout", "too-long")}

    def test_a_message_waits_more_than_0_s_for_its_delivery_outcome(self) -> None:
        body = document(
            entry("m"),
            {"id": "m", "type": "message", "channel": "email", "templateId": "t", "timeout": "PT0S"},
        )
        assert found(body) == {("/nodes/1/timeout", "range")}

    def test_time_zones_are_iana_names_or_the_profiles(self) -> None:
        body = document(
            entry("w1"),
            {
                "id": "w1",
                "type": "wait",
                "until": "2027-01-01T09:00:00",
                "timeZone": "Mars/Olympus",
                "next": "w2",
            },
            {"id": "w2", "type": "wait", "until": "person.birthDate", "timeZone": "profile", "next": "w3"},
            {"id": "w3", "type": "wait", "duration": 60, "timeZone": "UTC"},
        )
        assert found(body) == {("/nodes/1/timeZone", "time-zone"), ("/nodes/3/timeZone", "time-zone")}

    def test_audience_reads_are_scheduled_in_the_future_with_valid_cron(self) -> None:
        def reading(schedule: dict[str, Any]) -> dict[str, Any]:
            start = {
                "id": "start",
                "type": "readAudience",
                "audienceId": "a",
                "schedule": schedule,
                "next": "done",
            }
            return document(start, end())

        past = reading({"frequency": "once", "at": (NOW - timedelta(minutes=1)).isoformat()})
        assert found(past) == {("/nodes/0/schedule/at", "past")}
        bad_cron = reading({"frequency": "cron", "expression": "61 * * * *", "timeZone": "Nowhere/Else"})
        assert found(bad_cron) == {
            ("/nodes/0/schedule/expression", "cron"),
            ("/nodes/0/schedule/timeZone", "time-zone"),
        }

    def test_the_journey_ends_after_it_starts_and_not_in_the_past(self) -> None:
        backwards = document(entry(), end(), startAt="2027-02-01T00:00:00Z", endAt="2027-01-01T00:00:00Z")
        assert found(backwards) == {("/endAt", "dates")}
        over = document(entry(), end(), endAt="2026-01-01T00:00:00Z")
        assert found(over) == {("/endAt", "past")}

    def test_the_journeys_timeout_is_at_most_91_days(self) -> None:
        assert found(document(entry(), end(), timeout="P92D")) == {("/timeout", "range")}
        assert found(document(entry(), end(), timeout=0)) == {("/timeout", "range")}


class TestJourneyProperties:
    def test_test_mode_needs_test_profiles(self) -> None:
        body = document(entry(), end(), testMode={"enabled": True})
        assert found(body) == {("/testMode/testProfiles", "required")}
        body["testMode"]["testProfiles"] = ["Email:jane@example.com"]
        assert found(body) == set()

    def test_an_exit_criterion_names_an_event_type_or_a_condition(self) -> None:
        body = document(entry(), end(), exitCriteria=[{"type": "event", "name": "any"}])
        assert found(body) == {("/exitCriteria/0", "required")}


class TestAllAtOnce:
    def test_every_problem_is_reported_in_one_answer(self) -> None:
        body = document(
            entry("split", condition="=="),
            {
                "id": "split",
                "type": "condition",
                "branches": [{"name": "b", "condition": "true"}],
                "otherwise": "nowhere",
            },
            {"id": "orphan", "type": "action", "actionId": str(uuid.uuid4())},
            {"id": "second", "type": "audience", "audienceId": "a"},
            {"id": "loop", "type": "updateProfile", "updates": [{"path": "x", "value": "1"}], "next": "loop"},
            endAt="2020-01-01T00:00:00Z",
        )
        assert found(body) == {
            ("/nodes/0/condition", "pql"),
            ("/nodes/1/branches/0/next", "missing-branch"),
            ("/nodes/1/otherwise", "unknown-node"),
            ("/nodes/2", "unreachable"),
            ("/nodes/2/actionId", "unknown-action"),
            ("/nodes/3", "multiple-entries"),
            ("/nodes/4", "unreachable"),
            ("/nodes/4/next", "cycle"),
            ("/endAt", "past"),
        }


# Properties


def _chain(length: int, back_to: int, waits: set[int]) -> dict[str, Any]:
    """An entry, ``length`` nodes in a row (``waits`` among them are waits, the others
    profile updates), and a link from the last one back to node ``back_to`` of the row."""
    nodes: list[dict[str, Any]] = [entry("n0")]
    for position in range(length):
        follows = f"n{position + 1}" if position + 1 < length else f"n{back_to}"
        node: dict[str, Any]
        if position in waits:
            node = {"id": f"n{position}", "type": "wait", "duration": 60, "next": follows}
        else:
            node = {"id": f"n{position}", "type": "updateProfile", "updates": [{"path": "x", "value": "1"}]}
            node["next"] = follows
        nodes.append(node)
    return document(*nodes)


class TestCycleProperty:
    @settings(max_examples=200, deadline=None)
    @given(st.data())
    def test_a_back_link_is_a_cycle_without_a_wait_unless_a_wait_lies_on_it(
        self, data: st.DataObject
    ) -> None:
        length = data.draw(st.integers(min_value=1, max_value=12))
        back_to = data.draw(st.integers(min_value=0, max_value=length - 1))
        waits = data.draw(st.sets(st.integers(min_value=0, max_value=length - 1)))
        reported = {(p.path, p.code) for p in problems(_chain(length, back_to, waits))}
        on_cycle = set(range(back_to, length))
        if on_cycle & waits:
            assert reported == set()
        else:
            assert reported == {(f"/nodes/{length}/next", "cycle")}


@pytest.mark.parametrize("timeout", ["P91D", 91 * 86400, "PT1S"])
def test_the_journeys_timeout_may_be_written_either_way(timeout: str | int) -> None:
    assert found(document(entry(), end(), timeout=timeout)) == set()
