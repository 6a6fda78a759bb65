import numpy as np

from world.imagegen import shapes
from world.imagegen.quality import read_geometry
from world.imagegen.shapes import Scene


def test_every_caption_parses_back_to_its_scene():
    corpus = shapes.all_captions()
    assert len(corpus) > 20000
    for text, scene in corpus[::97]:
        got = shapes.parse(text)
        assert (got.shape, got.fg, got.bg) == (scene.shape, scene.fg, scene.bg), text


def test_parse_refuses_prompts_outside_the_vocabulary():
    assert shapes.parse("a cat in a hat") is None
    assert shapes.parse("a red circle") is None                 # no background colour
    assert shapes.parse("a red circle and a green square on blue") is None


def test_drawn_images_show_their_colours_and_layout():
    rng = np.random.default_rng(0)
    scene = Scene("square", "yellow", "black", "small", "left")
    image = shapes.draw([scene], rng)[0]
    assert image.shape == (3, shapes.SIZE, shapes.SIZE) and image.min() >= -1 and image.max() <= 1
    pixels = ((image.transpose(1, 2, 0) + 1) * 127.5).round().astype(np.uint8)
    assert read_geometry(pixels, scene) == ("small", "left")
    corner = pixels[0, -1] / 255.0                                # top right is background
    assert np.allclose(corner, shapes.COLOURS["black"], atol=0.01)
