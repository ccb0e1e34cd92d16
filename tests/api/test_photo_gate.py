"""A v2 model end to end: its photo gate sends unusable photos to review with what to retake, and
the policy applies the threshold the model certified for the policy's overpay rate."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from claims.policy import PolicyConfig
from tests.api.conftest import MakeApi, jpeg_bytes, photo
from tests.onnx_models import tiny_model_proto

V2_POLICY = PolicyConfig(version="test-v2", fast_lane_rule="exceedance", max_overpay_rate=Decimal("0.02"))


def _v2_model(tmp_path: Path, thresholds: dict[str, float | None]) -> Path:
    """Grades every photo severe with P(grade >= k) ~ 0.99 (a big bias); the gate says `parcel` and
    `ok` for bright photos and `dark` for dark ones (quality logit falls with the channel mean, which
    is in [-1, 1])."""
    onnx = pytest.importorskip("onnx")
    weight = np.zeros((3, 3), dtype=np.float32)
    bias = np.array([8.0, 8.0, 8.0], dtype=np.float32)
    scene_w = np.zeros((3, 4), dtype=np.float32)
    scene_b = np.array([4.0, 0.0, 0.0, 0.0], dtype=np.float32)  # parcel
    quality_w = np.zeros((3, 4), dtype=np.float32)
    quality_w[:, 0] = 4.0  # ok rises with brightness
    quality_w[:, 1] = -4.0  # dark falls with it
    quality_b = np.zeros(4, dtype=np.float32)
    fast_lane = {"thresholds": thresholds, "delta": 0.1, "calibration_size": 500, "gate_threshold": 0.5}
    proto = tiny_model_proto(
        "tiny-v2", weight, bias,
        extra_props={"claimlane.fast_lane": json.dumps(fast_lane)},
        gate=(scene_w, scene_b, quality_w, quality_b),
    )  # fmt: skip
    path = tmp_path / "tiny-v2" / "model.onnx"
    path.parent.mkdir()
    onnx.save(proto, str(path))
    return path


def _jpeg(level: int) -> bytes:
    buf = io.BytesIO()
    rng = np.random.default_rng(level)
    pixels = np.clip(level + rng.normal(0, 5, (72, 96, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def test_an_unusable_photo_goes_to_review_and_the_customer_learns_which_to_retake(
    make_api: MakeApi, tmp_path: Path
) -> None:
    api = make_api(policy=V2_POLICY, model_path=_v2_model(tmp_path, {"0.01": None, "0.02": 0.95}))
    customer = api.user()
    r = api.post_claim(customer, [photo(_jpeg(220)), photo(_jpeg(10))], declared_value="300.00")
    assert r.status_code == 202, r.text
    api.drain()
    view = api.client.get(r.json()["url"], headers=customer).json()
    assert view["status"] == "in_review"
    decision = view["decision"]
    assert decision["reasons"] == ["photo_unusable"]
    assert [(p["position"], p["problem"]) for p in decision["retake"]] == [(2, "dark")]
    assert decision["retake"][0]["photo_id"] == view["photos"][1]["id"]
    assert "Photo 2 is too dark: retake it in better light." in decision["explanation"]


def test_usable_photos_take_the_fast_lane_at_the_certified_threshold(
    make_api: MakeApi, tmp_path: Path
) -> None:
    api = make_api(policy=V2_POLICY, model_path=_v2_model(tmp_path, {"0.01": None, "0.02": 0.95}))
    customer = api.user()
    view = api.offered_claim(customer, photos=[photo(jpeg_bytes(1))], declared_value="300.00")
    assert view["decision"]["amount"] == "300.00"  # severe: 100% of the declared value


def test_a_model_certifying_no_threshold_for_the_rate_gets_no_fast_lane(
    make_api: MakeApi, tmp_path: Path
) -> None:
    api = make_api(
        policy=V2_POLICY, model_path=_v2_model(tmp_path, {"0.01": None, "0.02": None, "0.05": 0.5})
    )
    customer = api.user()
    r = api.post_claim(customer, [photo(jpeg_bytes(1))], declared_value="300.00")
    api.drain()
    view = api.client.get(r.json()["url"], headers=customer).json()
    assert view["status"] == "in_review"
    assert view["decision"]["reasons"] == ["low_confidence"]
