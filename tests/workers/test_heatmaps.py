"""With the bundled model, an assessment stores a heatmap layer for every photo (for the console)."""

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from config.settings import Settings
from models.heatmaps import heatmap_layer
from models.inference import default_model_path
from services.context import build_services
from services.reviewing import heatmap_png
from storage.tables import Claim
from tests.workers.helpers import jpeg, submit_claim
from workers.assessment import assess_claim


@pytest.fixture
def bundled_services(tmp_path: Path):
    model = default_model_path()
    services = build_services(Settings(data_dir=tmp_path, model_path=model.parent))
    yield services
    services.close()


def test_assessment_keeps_each_photos_damage_map_and_the_heatmap_is_drawn_on_first_view(bundled_services):
    services = bundled_services
    claim_id = submit_claim(services, [jpeg(1, (320, 240)), jpeg(2, (240, 320))])
    assert assess_claim(services, claim_id) == "assessed"
    with services.sessions() as session:
        claim = session.get(Claim, claim_id)
        for photo in claim.photos:
            assert photo.heatmap_key and photo.model_version in photo.heatmap_key
            assert photo.damage_map is not None and np.asarray(photo.damage_map).ndim == 2
            # Nothing drawn before the decision; the first view draws it and keeps it.
            assert not services.store.exists(photo.heatmap_key)
            png = heatmap_png(session, services.store, claim_id, photo.id)
            assert services.store.get(photo.heatmap_key) == png
            layer = Image.open(io.BytesIO(png))
            assert layer.mode == "RGBA"
            # stretched over the photo: same aspect ratio as the photo
            assert abs(layer.width / layer.height - photo.width / photo.height) < 0.02


def test_heatmap_layer_shows_only_positive_evidence():
    damage_map = np.full((7, 7), -1.0)
    damage_map[3, 3] = 2.0
    alpha = np.asarray(heatmap_layer(damage_map, (70, 70)))[..., 3]
    assert alpha[35, 35] > 100  # strongest evidence: opaque
    assert alpha[2, 2] == 0  # negative evidence: clear
    assert np.asarray(heatmap_layer(np.full((7, 7), -0.5), (70, 70)))[..., 3].max() == 0


def test_a_process_killed_after_the_decision_loses_nothing(tmp_path: Path) -> None:
    """Everything moved off the decision's path is made on demand: a process that decided and died
    before anyone looked leaves a claim whose served copies and heatmaps a new process makes."""
    from bench.phone_photos import phone_jpeg
    from services.photos import served_photo_bytes

    settings = Settings(data_dir=tmp_path, model_path=default_model_path().parent)
    first = build_services(settings)
    claim_id = submit_claim(first, [phone_jpeg(7, (1600, 1200))])
    assert assess_claim(first, claim_id) == "assessed"
    first.close()  # the process dies: no served copy, no heatmap was ever made
    second = build_services(settings)
    try:
        with second.sessions() as session:
            [photo] = session.get(Claim, claim_id).photos
            assert not second.store.exists(photo.derivative_key)
            assert photo.heatmap_key is not None and not second.store.exists(photo.heatmap_key)
            served = served_photo_bytes(second.store, photo, 2048)
            exif = Image.open(io.BytesIO(served)).getexif()
            assert not exif.get_ifd(0x8825) and 0x8825 not in exif  # no GPS
            assert (
                Image.open(io.BytesIO(heatmap_png(session, second.store, claim_id, photo.id))).mode == "RGBA"
            )
            assert second.store.exists(photo.derivative_key) and second.store.exists(photo.heatmap_key)
    finally:
        second.close()
