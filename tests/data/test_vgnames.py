"""The field's @UTM_east@UTM_north@...@ file names: parse, write, round trip, errors."""

import math

import pytest

from vgloc.data.vgnames import VGName, VGNameError, format_vg_name, is_vg_name, parse_vg_name

PITTS = "@0584251.06@4477177.81@17@T@040.4420633@-080.0023244@001234@@@@@@pitts@@.jpg"


def test_parse_full_name() -> None:
    v = parse_vg_name("/data/pitts30k/images/test/queries/" + PITTS)
    assert (v.utm_east, v.utm_north, v.zone_number, v.zone_letter) == (
        584251.06,
        4477177.81,
        17,
        "T",
    )
    assert (v.lat, v.lon) == (40.4420633, -80.0023244)
    assert v.pano_id == "001234" and v.timestamp == "pitts"
    assert math.isnan(v.heading)


def test_parse_minimal_name() -> None:
    v = parse_vg_name("@100.5@200.25@.png")
    assert (v.utm_east, v.utm_north, v.zone_number) == (100.5, 200.25, None)
    assert math.isnan(v.lat)


def test_round_trip() -> None:
    v = VGName(386248.27, 6174175.70, 33, "U", 55.7, 13.19, heading=270.0, pitch=-5.0, note="night")
    name = format_vg_name(v)
    assert is_vg_name(name) and name.endswith("@.jpg")
    assert parse_vg_name(name) == v


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("photo.jpg", "not in the @UTM_east"),
        ("@abc@12@.jpg", "UTM_east='abc' is not a number"),
        ("@1@@.jpg", "required"),
        ("@1@2@99@T@.jpg", "zone number 99"),
        ("@1@2@@@1@2@@@north@.jpg", "heading='north'"),
    ],
)
def test_bad_names_are_named_in_the_error(name: str, message: str) -> None:
    with pytest.raises(VGNameError, match=message) as err:
        parse_vg_name(name)
    assert name.split("/")[-1] in str(err.value)
