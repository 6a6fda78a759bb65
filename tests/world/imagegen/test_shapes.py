import numpy as np

from world.imagegen import quality, shapes
from world.imagegen.shapes import Scene


def test_every_caption_parses_back_to_its_scene():
    captions = shapes.random_captions(3000, np.random.default_rng(0))
    for text, scene in captions:
        got = shapes.parse(text)
        assert got is not None, text
        assert (got.shape, got.fg, got.bg, got.fg_texture, got.bg_texture) == (
            scene.shape, scene.fg, scene.bg, scene.fg_texture, scene.bg_texture), text


def test_parse_reads_textures_next_to_their_colours():
    got = shapes.parse("a red striped circle on a dotted blue background")
    assert (got.fg, got.fg_texture, got.bg, got.bg_texture) == ("red", "striped", "blue", "dotted")
    got = shapes.parse("checkered green backdrop with a small white wedge")
    assert (got.shape, got.fg_texture, got.bg_texture, got.size) == ("triangle", "plain", "checked", "small")


def test_parse_refuses_prompts_outside_the_vocabulary():
    assert shapes.parse("a cat in a hat") is None
    assert shapes.parse("a red circle") is None                 # no background colour
    assert shapes.parse("a red circle and a green square on blue") is None


def test_drawn_images_show_their_colours():
    rng = np.random.default_rng(0)
    scene = Scene("square", "yellow", "black", "small", "left")
    image = shapes.draw([scene], rng)[0]
    assert image.shape == (3, shapes.SIZE, shapes.SIZE) and image.min() >= -1 and image.max() <= 1
    pixels = ((image.transpose(1, 2, 0) + 1) * 127.5).round().astype(np.uint8)
    corner = pixels[0, -1] / 255.0                                # top right is plain background
    assert np.allclose(corner, shapes.COLOURS["black"], atol=0.01)


def test_textures_differ_per_sample_and_carry_detail():
    """Two drawings of one textured caption differ (the texture's phase is open); a plain one has less detail."""
    rng = np.random.default_rng(1)
    striped = Scene("circle", "red", "blue", "large", "centre", "striped", "dotted")
    plain = Scene("circle", "red", "blue", "large", "centre")
    a, b = shapes.draw([striped, striped], rng)
    assert np.abs(a - b).mean() > 0.1
    assert quality.reference_detail([striped])[0] > 1.5 * quality.reference_detail([plain])[0]

