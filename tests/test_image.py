"""fruits_lib.support.image: decoding every kind of file, the bomb guards, padding, scaling, batches."""

import numpy as np
import pytest
from helpers.images import bad_files, odd_but_valid_files, picture

from fruits_lib.support.image import (
    MAX_DECODED_PIXELS,
    ImageDecodeError,
    decode_image,
    featurize_images,
    preprocess,
)


@pytest.mark.parametrize("name", sorted(odd_but_valid_files()))
def test_valid_images_in_any_mode_decode_to_rgb(name):
    pixels = decode_image(odd_but_valid_files()[name], 96)
    assert pixels.shape == (96, 96, 3) and pixels.dtype == np.uint8
    assert tuple(pixels[0, 0]) == (255, 255, 255)  # white background kept (transparency included)


@pytest.mark.parametrize("name, reason", [
    ("empty.jpg", "empty file"), ("text.jpg", "not a readable image"), ("random.png", "not a readable image"),
    ("truncated.jpg", "truncated"), ("bomb.png", "too large"),
])
def test_bad_files_raise_a_readable_reason(name, reason):
    with pytest.raises(ImageDecodeError, match=reason):
        decode_image(bad_files()[name], 96)


def test_large_png_over_our_limit_is_refused_before_decoding():
    from helpers.images import png_bomb

    side = int(np.sqrt(MAX_DECODED_PIXELS)) + 100
    with pytest.raises(ImageDecodeError, match="too large to decode safely"):
        decode_image(png_bomb(side, side), 96)


def test_non_square_images_are_padded_not_distorted():
    pixels = decode_image(picture(size=(200, 100), colour=(0, 0, 255)), 100)
    assert tuple(pixels[5, 50]) == (255, 255, 255)  # padding band above the picture
    assert pixels[50, 50, 2] > 200 and pixels[50, 50, 0] < 60  # the blue disc stays round, in the middle


def test_preprocess_maps_pixels_to_minus_one_one():
    out = preprocess(np.array([[0, 255]], dtype=np.uint8))
    assert out.dtype == np.float32 and out.tolist() == [[-1.0, 1.0]]


def test_featurize_images_uses_fixed_size_batches_and_keeps_errors_in_place():
    seen = []

    def predict(batch):
        seen.append(batch.shape)
        return np.tile(batch.mean(axis=(1, 2, 3))[:, None], (1, 4))

    contents = [picture()] * 5 + [b""] + [picture()] * 4
    features, errors = featurize_images(predict, contents, 32, batch_size=4)
    assert [shape[0] for shape in seen] == [4, 3, 2]  # batch of 4 minus the bad one, then the rest
    assert all(shape[1:] == (32, 32, 3) for shape in seen)
    assert errors[5] == "empty file (0 bytes)" and features[5] is None
    assert all(f is not None and f.dtype == np.float32 for i, f in enumerate(features) if i != 5)
