"""The O/X letters: data, the checked pipeline, training (short runs) and the command."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from gradcheck import check
from nets import asker, letters
from nets.letters.command import checks, main
from nets.plot import ascii_curves, save_png


def test_dataset_is_seeded_balanced_and_in_range():
    images, labels = letters.letters_dataset()
    again, _ = letters.letters_dataset()
    other, _ = letters.letters_dataset(seed=1)
    assert images.shape == (30, 1, 6, 6)
    np.testing.assert_array_equal(images, again)
    assert not np.array_equal(images, other)
    assert labels.tolist().count(0) == labels.tolist().count(1) == 15
    assert images.min() >= 0.0
    assert images.max() <= 1.0
    np.testing.assert_array_equal(images[0, 0], letters.LETTER_O)
    np.testing.assert_array_equal(images[5, 0], letters.LETTER_X)


def test_shift_moves_and_zero_fills():
    image = np.arange(9.0).reshape(3, 3)
    np.testing.assert_array_equal(letters.shift(image, 1, 0), [[0, 0, 0], [0, 1, 2], [3, 4, 5]])
    np.testing.assert_array_equal(letters.shift(image, 0, -1), [[1, 2, 0], [4, 5, 0], [7, 8, 0]])


def test_render_draws_one_character_per_pixel():
    assert letters.render(np.array([[0.0, 1.0], [0.5, 0.3]])) == " #\n:."


def test_convnet_gradient_checks_and_asker_features_are_in_range():
    images, labels = letters.letters_dataset(noisy_copies=0)
    problem = letters.convnet(images, labels).problem(letters.init_convnet())
    assert check(problem.loss, problem.grad, problem.params).passed
    features = letters.asker_features(images)
    assert features.shape == (10, 4)
    assert ((features > 0.5) & (features < 1.0)).all()  # a sigmoid of a positive response


def test_convnet_learns_the_letters():
    images, labels = letters.letters_dataset()
    run = letters.train_convnet(images, labels, epochs=30, filters=1)
    assert run.final_accuracy == 1.0
    assert run.losses[-1] < run.losses[0] / 5


def test_literal_rules_crash_with_the_askers_shape_error():
    images, labels = letters.letters_dataset(noisy_copies=0)
    run = letters.train_asker(asker.LiteralNet, letters.asker_features(images), labels, epochs=3)
    assert run.crash.startswith("epoch 1, sample 2: ValueError: non-broadcastable output operand")
    assert len(run.losses) == 1


def test_asker_step_updates_in_place_like_the_asker():
    net = asker.CorrectedNet(seed=0)
    before = net.params()
    grads = net.partials(asker.X[0], asker.Y_ONE_HOT[0])
    letters.asker_step(net, asker.X[0], asker.Y_ONE_HOT[0], 0.5)
    for name, value in net.params().items():
        assert value == pytest.approx(before[name] - 0.5 * grads[name])


def test_checks_pass_the_correct_and_flag_the_askers_rules():
    images, labels = letters.letters_dataset(noisy_copies=0)
    lines = checks(images, labels)
    assert lines[0].split()[:2] == ["convnet:", "passed:"]
    assert "shape_mismatch at 14 of 14" in lines[1]  # LiteralNet: (2,) partials
    assert "wrong at 14 of 14" in lines[2]
    assert "cosine with the true gradient" in lines[2]
    assert "passed" in lines[3]


def test_command_short_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # no PNG: the text must still come out
    assert main(["--epochs", "20", "--seeds", "1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "CRASHED at epoch 1, sample 2" in out
    assert "accuracy 100.0%" in out
    assert "PNG: not written" in out
    assert (tmp_path / "letters.md").read_text().startswith("# O/X letters end to end")


def test_ascii_curves_exact():
    text = ascii_curves({"a": [3.0, 2.0, 1.0], "b": [1.0]}, width=8, height=3)
    assert text == "\n".join(
        [
            "        3 |*",
            "          |    *",
            "        1 |o      *",
            "          +--------",
            "           0 epoch 2",
            "  * a",
            "  o b",
        ]
    )


def test_ascii_curves_rejects_what_it_cannot_draw():
    with pytest.raises(ValueError, match="width >= 8"):
        ascii_curves({"a": [1.0]}, width=4)
    with pytest.raises(ValueError, match="no finite value"):
        ascii_curves({"a": [float("nan")]})
    with pytest.raises(ValueError, match="no finite value"):
        ascii_curves({"a": [0.0, -1.0]}, log=True)


def test_save_png_writes_a_png_or_nothing(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    path = save_png({"panel": {"a": [3.0, 2.0, 1.0]}}, tmp_path / "curves.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert save_png({"panel": {"a": [1.0]}}, tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()
