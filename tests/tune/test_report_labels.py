"""The recovery figure's labels never overprint one another."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from xbarref.tune.report import _place_labels  # noqa: E402


def _text_boxes(fig, ax):
    renderer = fig.canvas.get_renderer()
    return [t.get_window_extent(renderer) for t in ax.texts]


def test_labels_of_coincident_points_do_not_overlap():
    fig, ax = plt.subplots(figsize=(7, 4.8))
    points = [(f"drift {k} and a long scenario name", 0.98, 1.0 - 0.001 * k) for k in range(5)]
    points += [("combined: wires 0.35 ohm, no read noise", 0.36, 0.99)]
    ax.plot([p[1] for p in points], [p[2] for p in points], "o")
    ax.set_xlim(-1, 1.3)
    ax.set_ylim(-0.5, 1.1)
    _place_labels(fig, ax, points)
    boxes = _text_boxes(fig, ax)
    assert len(boxes) == len(points)
    for i, a in enumerate(boxes):
        for b in boxes[:i]:
            assert not a.overlaps(b)
    plt.close(fig)


def test_the_overlap_check_can_fail():
    fig, ax = plt.subplots()
    ax.text(0.5, 0.5, "same place")
    ax.text(0.5, 0.5, "same place")
    a, b = _text_boxes(fig, ax)
    assert a.overlaps(b)
    plt.close(fig)
