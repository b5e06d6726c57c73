"""The core's request types (core/requests.py): every front end's mistakes get the same InvalidRequest (fast tier)."""

from __future__ import annotations

import pytest

from ds01_jupyter.core import Settings
from ds01_jupyter.core import requests as R
from ds01_jupyter.core.errors import InvalidName, InvalidRequest


@pytest.mark.parametrize("gpus", [True, False, -1, R.MAX_GPUS + 1, 10**30, 1.0, "1", [1], {"n": 1}])
def test_a_gpu_count_is_a_whole_number_in_range_never_a_bool(gpus):
    with pytest.raises(InvalidRequest, match="'gpus' must be a whole number from 0 to 1024"):
        R.DeployRequest("demo", gpus=gpus)


@pytest.mark.parametrize("gpus", [None, 0, 1, R.MAX_GPUS])
def test_good_gpu_counts_pass_unchanged(gpus):
    assert R.DeployRequest("demo", gpus=gpus).gpus == gpus


def test_deploy_request_from_a_body_refuses_unknown_fields_and_reads_null_as_absent():
    request = R.DeployRequest.from_dict({"gpus": 2, "protected": None, "framework": None}, project="demo")
    assert request == R.DeployRequest("demo", gpus=2, protected=False, framework=None)
    with pytest.raises(InvalidRequest, match="Unknown field.*gpu_count; known: gpus, protected, framework"):
        R.DeployRequest.from_dict({"gpu_count": 1}, project="demo")
    with pytest.raises(InvalidRequest, match="JSON object"):
        R.DeployRequest.from_dict(["gpus"], project="demo")
    with pytest.raises(InvalidRequest, match="'protected' must be true or false"):
        R.DeployRequest.from_dict({"protected": "false"}, project="demo")  # bool("false") would be True
    with pytest.raises(InvalidName):
        R.DeployRequest("../etc")


def test_a_framework_not_configured_is_refused_listing_those_that_are():
    settings = Settings(framework_images={"pytorch": "ds01/pytorch:2"})
    R.DeployRequest("demo", framework="pytorch").check_framework(settings)
    with pytest.raises(InvalidRequest, match="pytorch"):
        R.DeployRequest("demo", framework="tensorflow").check_framework(settings)
    with pytest.raises(InvalidRequest, match="at most 256"):
        R.DeployRequest("demo", framework="x" * 1000)


def test_server_options_are_the_spawners_user_options():
    assert R.ServerOptions.from_dict({"project": "demo", "gpus": 0, "create": True}).create is True
    with pytest.raises(InvalidRequest, match="Unknown field.*volumes"):
        R.ServerOptions.from_dict({"project": "demo", "volumes": {"/": "/host"}})
    with pytest.raises(InvalidRequest, match="'gpus'"):
        R.ServerOptions.from_dict({"gpus": True})
    with pytest.raises(InvalidName):
        R.ServerOptions.from_dict({"project": "Bad Name"})


@pytest.mark.parametrize("field", ["keep_last", "keep_best"])
@pytest.mark.parametrize("value", [True, -1, R.MAX_KEEP + 1, 2.5, "3"])
def test_prune_policy_counts(field, value):
    with pytest.raises(InvalidRequest, match=f"'{field}' must be a whole number"):
        R.PrunePolicy(**{field: value})


@pytest.mark.parametrize("days", [True, -0.5, R.MAX_DAYS + 1, 1e308, float("inf"), float("nan"), "7"])
def test_prune_policy_age_in_days(days):
    with pytest.raises(InvalidRequest, match="'older_than_days' must be a number from 0 to 100000"):
        R.PrunePolicy.from_request({"older_than_days": days})


def test_prune_policy_from_a_request_and_its_rules():
    policy = R.PrunePolicy.from_request({"keep_last": 2, "older_than_days": 1.5, "mode": "max", "confirm": True},
                                        also=("confirm",))
    assert policy.rules() == {"keep_last": 2, "older_than": 1.5 * 86400, "mode": "max"}
    assert policy.has_rule and not R.PrunePolicy(metric="loss").has_rule
    with pytest.raises(InvalidRequest, match="'mode' must be one of min, max"):
        R.PrunePolicy.from_request({"keep_last": 1, "mode": "up"})
    with pytest.raises(InvalidRequest, match="Unknown field.*mode"):  # a cleanup keeps by count and age only
        R.PrunePolicy.from_request({"keep_last": 1, "mode": "min"}, modes=False)
    with pytest.raises(InvalidRequest, match="Unknown field.*keep"):
        R.PrunePolicy.from_request({"keep": 1})
    # The core's own form (ds01d, cleanup): seconds, None for "not given".
    assert R.PrunePolicy.from_dict({"keep_last": None, "older_than": 60}).rules() == {"older_than": 60.0}
    with pytest.raises(InvalidRequest, match="'older_than' must be a number"):
        R.PrunePolicy.from_dict({"older_than": -1})


def test_retire_stop_rescue_and_confirm_flags():
    assert R.RetireRequest.from_dict({"mode": None, "include_caches": True}) == R.RetireRequest(None, True, False)
    with pytest.raises(InvalidRequest, match="'mode' must be one of rescue, discard"):
        R.RetireRequest(mode="delete")
    for cls, field in ((R.StopRequest, "stop_processes"), (R.RescueRequest, "include_caches"),
                       (R.Confirm, "confirm")):
        assert getattr(cls.from_dict({}), field) is False
        for wrong in (1, 0, "true", [], {}):
            with pytest.raises(InvalidRequest, match=f"'{field}' must be true or false"):
                cls.from_dict({field: wrong})
        with pytest.raises(InvalidRequest, match="Unknown field"):
            cls.from_dict({"force": True})


def test_numbers_written_as_text():
    assert R.whole_number_text("12", "tail", R.MAX_TAIL) == 12
    assert R.whole_number_text("", "tail", R.MAX_TAIL) is None
    for text in ("-5", "1e3", "12abc", "٣", "9" * 40, " ", "0x10"):
        with pytest.raises(InvalidRequest, match="'tail' must be a whole number from 0 to 100000"):
            R.whole_number_text(text, "tail", R.MAX_TAIL)
    with pytest.raises(InvalidRequest):
        R.whole_number_text(str(R.MAX_TAIL + 1), "tail", R.MAX_TAIL)


def test_storage_query_takes_whole_byte_counts_even_as_floats_from_ds01d():
    assert R.StorageQuery(1000.0).larger_than == 1000  # ds01d's wire carries large numbers as floats
    assert R.StorageQuery(None).larger_than is None
    for wrong in (True, -1, 1.5, R.MAX_SIZE + 1, float("inf"), "1G"):
        with pytest.raises(InvalidRequest, match="'larger_than' must be a number of bytes"):
            R.StorageQuery(wrong)


def test_text_fields_are_short_strings_without_nul():
    assert R.CheckpointQuery.from_dict({"metric": "val_loss", "mode": "min"}).metric == "val_loss"
    for wrong in ("a\x00b", "x" * 257, 3, ["loss"]):
        with pytest.raises(InvalidRequest, match="'metric' must be a string of at most 256"):
            R.CheckpointQuery(metric=wrong)
    assert R.WhereQuery().pattern == ""


def test_a_retire_cannot_both_keep_and_discard_the_caches():
    with pytest.raises(InvalidRequest, match="choose one"):
        R.RetireRequest.from_dict({"mode": "discard", "include_caches": True})
    assert R.RetireRequest("rescue", include_caches=True).include_caches


def test_logs_tail_and_where_pattern():
    assert R.LogsQuery(None).tail is None and R.LogsQuery().tail == 200
    with pytest.raises(InvalidRequest, match="'tail' must be a whole number from 0 to 100000"):
        R.LogsQuery(-5)
    with pytest.raises(InvalidRequest, match="'pattern'"):
        R.WhereQuery("*" * 300)
