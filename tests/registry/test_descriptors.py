"""Descriptor and project_info parsing, validation and export (pure code, no database)."""

from __future__ import annotations

import copy
import datetime as dt

import pytest
import yaml

from apps.registry.descriptors import (
    DescriptorError,
    deep_merge,
    export_descriptor_yaml,
    parse_date,
    parse_descriptor,
    parse_descriptor_yaml,
    parse_experiments,
    parse_language,
)
from apps.registry.project_info import (
    ProjectInfoError,
    export_project_info_yaml,
    parse_project_info,
    parse_project_info_yaml,
)
from apps.registry.yaml_io import load_yaml

from .conftest import LANGUAGE_SHAPES, PROJECT_INFO, descriptor, to_yaml

CONTRACT_EXAMPLE = """
ml_model_configuration:
  model_identification:
    name: Random Forest
    version: V.1.0
    ID: 0001_[python]_penicillin_RF
    UUID: ""
    author: A. Modeler
    doi: ""
    creation_date: 22-01-2024
    project: ../project_info.yaml
    status: online
    status_description: Model is loaded and ready for predictions.
  model_description:
    learner: random_forest
    model_type: interpretable
    model_name: Random Forest [Python implementation]
    description: Random forest soft sensor for penicillin concentration.
    language:
      - name: python
      - version: 3.11.7
    config_files:
      model_file: 0001_[python]_penicillin_RF.pkl
    packages:
      - package: sklearn.ensemble
        class: RandomForestRegressor
        version: 1.5.2
    input_time_interval:
      time_interval: {value: 12, unit: minutes}
      aggregation: {method: NaN, description: NaN}
      description: One measurement every 12 minutes
  training_information:
    number_of_instances: 8000
    hyperparameters: {number_of_trees: 5, max_tree_depth: 7}
    validation: 10-fold CV - 3 repetitions
    experiments_ID: [92, 93, 96]
  inputs:
    features:
      - name: temperature
        type: sensor
        description: Temperature in the bioreactor.
        units: K
        lag: 0
        feature_scaling: none
        expected_range: {min: 296, max: 303}
      - name: sugar_feed_rate
        type: actuator
        description: Sugar feed rate (Fs).
        units: L/h
        lag: 0
        feature_scaling: none
        expected_range: {min: 0, max: 160}
  outputs:
    information:
      - name: penicillin_concentration
        description: Penicillin concentration.
        units: g L-1
        forecast_horizon: 0
        feature_scaling: none
        expected_range: {min: 0, max: 50}
"""


def test_contract_example_parses_with_typed_view():
    d = parse_descriptor_yaml(CONTRACT_EXAMPLE)
    assert d.model_id == "0001_[python]_penicillin_RF"
    assert d.version == "V.1.0"
    assert d.language == "python" and d.language_version == "3.11.7"
    assert d.feature_names == ["temperature", "sugar_feed_rate"]
    assert d.output_names == ["penicillin_concentration"]
    assert d.features[0].expected_range.min == 296 and d.features[1].expected_range.max == 160
    assert d.experiments_ids == (92, 93, 96)
    assert d.creation_date == dt.date(2024, 1, 22)
    assert d.model_file == "0001_[python]_penicillin_RF.pkl"
    assert d.input_scaler is None and d.status == "online"


@pytest.mark.parametrize("shape", sorted(LANGUAGE_SHAPES))
def test_three_language_shapes(shape):
    d = parse_descriptor(descriptor(language=LANGUAGE_SHAPES[shape]))
    assert (d.language, d.language_version) == ("python", "3.11.7")


def test_r_language_in_one_item_list():
    assert parse_language([{"name": "R", "version": "4.3.3"}]) == ("r", "4.3.3")


@pytest.mark.parametrize(
    "value, expected",
    [
        ([92, 93], (92, 93)),
        ("92, 93,96", (92, 93, 96)),
        ("97", (97,)),
        (98, (98,)),
        ("", ()),
        # STAMM's E. coli descriptors name their bioreactor runs
        ("BR01, BR02, BR03", ("BR01", "BR02", "BR03")),
        (["BR01", 7, "8"], ("BR01", 7, 8)),
    ],
)
def test_experiments_id_list_or_string(value, expected):
    assert parse_experiments(value) == expected


def test_experiments_id_bad_item_named():
    with pytest.raises(DescriptorError) as err:
        parse_experiments([92, {"id": 3}])
    assert err.value.errors == [
        "training_information.experiments_ID[1]: must be an experiment ID (a number or a name), got {'id': 3}"
    ]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("22-01-2024", dt.date(2024, 1, 22)),
        ("22/01/2024", dt.date(2024, 1, 22)),
        ("2024-01-22", dt.date(2024, 1, 22)),
        ("2024/01/22", dt.date(2024, 1, 22)),
        ("22.01.2024", dt.date(2024, 1, 22)),
        ("January 22, 2024", dt.date(2024, 1, 22)),
        ("22 Jan 2024", dt.date(2024, 1, 22)),
        ("", None),
        ("someday", None),
    ],
)
def test_creation_date_formats(text, expected):
    assert parse_date(text) == expected


def test_yaml_dates_stay_text_so_the_descriptor_is_json_safe():
    doc = load_yaml("a: 2024-01-22\nb: .nan\n")
    assert doc == {"a": "2024-01-22", "b": "NaN"}


def test_unrecognised_creation_date_is_a_warning_not_an_error():
    doc = descriptor()
    doc["ml_model_configuration"]["model_identification"]["creation_date"] = "sometime in 2024"
    d = parse_descriptor(doc)
    assert d.creation_date is None
    assert any("creation_date" in w for w in d.warnings)


def test_error_paths_name_the_offending_value():
    doc = descriptor()
    features = doc["ml_model_configuration"]["inputs"]["features"]
    features[3]["expected_range"] = {"min": "low", "max": 5}
    features[1]["lag"] = -1
    del features[0]["name"]
    doc["ml_model_configuration"]["model_identification"]["ID"] = "penicillin RF"
    with pytest.raises(DescriptorError) as err:
        parse_descriptor(doc)
    errors = err.value.errors
    assert "inputs.features[3].expected_range.min: must be a number" in errors
    assert "inputs.features[1].lag: must be at least 0" in errors
    assert "inputs.features[0].name: is required" in errors
    assert any(e.startswith("model_identification.ID: must look like NNNN_[language]_name") for e in errors)


def test_min_above_max_and_duplicate_feature():
    doc = descriptor()
    features = doc["ml_model_configuration"]["inputs"]["features"]
    features[0]["expected_range"] = {"min": 10, "max": 1}
    features[2]["name"] = features[1]["name"]
    with pytest.raises(DescriptorError) as err:
        parse_descriptor(doc)
    assert "inputs.features[0].expected_range: min (10) is greater than max (1)" in err.value.errors
    assert any(e.startswith("inputs.features[2].name: duplicate feature name") for e in err.value.errors)


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda c: c.pop("inputs"), "inputs: is required"),
        (lambda c: c["outputs"].update(information=[]), "outputs.information: must be a non-empty list"),
        (
            lambda c: c["model_description"].update(language=42),
            "model_description.language: must be a mapping {name, version} or a list of mappings",
        ),
        (
            lambda c: c["model_description"]["config_files"].update(model_file="../../etc/passwd"),
            "model_description.config_files.model_file: must be a bare file name (no directories)",
        ),
        (
            lambda c: c["model_identification"].update(status="maybe"),
            "model_identification.status: must be online or offline, got 'maybe'",
        ),
        (lambda c: c["inputs"]["features"][0].update(type="thermometer"), "inputs.features[0].type: must be one of"),
    ],
)
def test_each_invalid_descriptor_names_its_problem(mutate, expected):
    doc = descriptor()
    mutate(doc["ml_model_configuration"])
    with pytest.raises(DescriptorError) as err:
        parse_descriptor(doc)
    assert any(e.startswith(expected) for e in err.value.errors), err.value.errors


def test_missing_root_and_bad_yaml():
    with pytest.raises(DescriptorError, match="ml_model_configuration: is required"):
        parse_descriptor_yaml("model_identification: {}\n")
    with pytest.raises(DescriptorError, match="not valid YAML at line 3"):
        parse_descriptor_yaml("ml_model_configuration:\n  a: [1, 2\n")


def test_optional_sections_may_be_absent():
    doc = descriptor()
    config = doc["ml_model_configuration"]
    del config["training_information"]
    del config["model_description"]["packages"]
    del config["model_description"]["input_time_interval"]
    config["model_architecture"] = {"layers": [{"type": "dense", "units": 8}]}
    d = parse_descriptor(doc)
    assert d.experiments_ids == ()


def test_scaler_none_means_no_scaler():
    doc = descriptor(input_scaler="none")
    assert parse_descriptor(doc).input_scaler is None


def test_export_keeps_the_structure():
    d = parse_descriptor_yaml(CONTRACT_EXAMPLE)
    exported = export_descriptor_yaml(d.config)
    assert yaml.safe_load(exported) == yaml.safe_load(CONTRACT_EXAMPLE.replace("22-01-2024", "'22-01-2024'"))
    assert list(yaml.safe_load(exported)["ml_model_configuration"]) == [
        "model_identification",
        "model_description",
        "training_information",
        "inputs",
        "outputs",
    ]
    assert parse_descriptor_yaml(exported).config == d.config


def test_deep_merge_like_upstream_update():
    base = descriptor()["ml_model_configuration"]
    patch = {"model_identification": {"status": "offline"}, "training_information": {"experiments_ID": [1]}}
    merged = deep_merge(base, patch)
    assert merged["model_identification"]["status"] == "offline"
    assert merged["model_identification"]["name"] == "Random Forest"
    assert merged["training_information"]["experiments_ID"] == [1]
    assert base["model_identification"]["status"] == "online"  # the input is not modified


def test_descriptor_yaml_round_trip_of_test_helper():
    doc = descriptor()
    assert parse_descriptor_yaml(to_yaml(doc)).config == copy.deepcopy(doc["ml_model_configuration"])


# ------------------------------------------------------------------------------------------ project_info


def test_project_info_parses_and_exports_back():
    info = parse_project_info(PROJECT_INFO)
    assert info.project_id == "P0001" and info.name == "penicillin"
    assert info.start_date == dt.date(2024, 1, 1)
    assert info.variables[1].renamed_variable == "temperature" and info.variables[1].column_type == "Sensor"
    assert info.extra == {"db_config": {"host": "influxdb", "port": 8086}}
    again = parse_project_info_yaml(export_project_info_yaml(info))
    assert again == info


def test_project_info_errors_are_path_named():
    bad = copy.deepcopy(PROJECT_INFO)
    bad["project_ID"] = "PX1"
    bad["variables"][2]["column_type"] = "Gauge"
    bad["start_date"] = "the first of May"
    with pytest.raises(ProjectInfoError) as err:
        parse_project_info(bad)
    assert "project_ID: must be P followed by 4 digits, got 'PX1'" in err.value.errors
    assert any(e.startswith("variables[2].column_type: must be one of") for e in err.value.errors)
    assert any(e.startswith("start_date: unrecognised date") for e in err.value.errors)


def test_nan_bounds_mean_no_bound():
    doc = descriptor()
    doc["ml_model_configuration"]["inputs"]["features"][0]["expected_range"] = {"min": "NaN", "max": None}
    doc["ml_model_configuration"]["inputs"]["features"][1]["expected_range"] = {"min": 0, "max": "nan"}
    d = parse_descriptor(doc)
    assert d.features[0].expected_range is None
    assert d.features[1].expected_range.min == 0 and d.features[1].expected_range.max is None
