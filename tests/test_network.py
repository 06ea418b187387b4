"""The network description against paper Table 1 and docs/backbone.md."""

import pytest

from spec.network import PRESETS, Network, preset


def test_paper_preset_follows_table_1():
    net = preset("paper")
    inputs = [
        (s.frozen[0].width_in, s.frozen[0].height_in, s.frozen[0].channels_in) for s in net.stages
    ]
    assert inputs == [(320, 240, 32), (160, 120, 64), (80, 60, 128), (80, 60, 128)]
    assert [[b.stride for b in s.frozen] for s in net.stages] == [
        [2, 1, 1, 1],
        [2, 1, 1, 1],
        [1, 1, 1, 1],
        [2, 1, 1, 1],
    ]
    assert [[b.stride for b in s.trainable] for s in net.stages] == [[2], [2], [1], [2]]
    last = net.stages[-1].frozen[-1]
    assert (last.width_in, last.height_in, last.channels_out) == (40, 30, 256)


def test_paper_weight_counts():
    """By hand: stem 32*3*9 = 864; a downsampling block C->2C has 2*(9C + C^2) weights, a
    regular block on C channels 9C/2 + (C/2)^2.
    Frozen: 864 + [2624 + 3*1312] + [9344 + 3*4672] + [4*4672] + [35072 + 3*17536] = 137152.
    Trainable core: 864 + 2624 + 9344 + 4672 + 35072 = 52576.
    (The paper quotes 140K frozen and 120K for two trainable cores.)"""
    net = preset("paper")
    assert net.frozen_weights == 137152
    assert net.trainable_weights_per_core == 52576


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_build(name):
    net = preset(name)
    assert net.frozen_weights or net.trainable_weights_per_core


def test_table_3_configurations():
    assert preset("two_cores").core_shuffle is False
    assert preset("one_core").trainable_cores == 1
    assert preset("frozen_only").trainable_weights_per_core == 0
    assert preset("trainable_only").frozen_weights == 0


def test_descriptions_are_checked():
    base = preset("small")
    with pytest.raises(ValueError, match="input channels"):
        Network("x", 8, 8, 5, 4, base.stages)
    with pytest.raises(ValueError, match="core shuffle"):
        Network("x", 8, 8, 3, 4, base.stages, trainable_cores=1)
    with pytest.raises(ValueError, match="at least one core"):
        Network(
            "x", 8, 8, 3, 4, base.stages, trainable_cores=0, frozen_core=False, core_shuffle=False
        )
    with pytest.raises(ValueError, match="no preset"):
        preset("huge")


def test_stages_must_start_alike():
    """The backbone balances a frozen and a trainable stage from their first blocks on, which
    read the same pixels: both must start with the same stride and end the same size."""
    from spec.network import _build

    with pytest.raises(ValueError, match="same stride"):
        _build("x", 32, 24, 3, 4, (((1, 2), (2,)),))
    with pytest.raises(ValueError, match="same stride"):
        _build("x", 32, 24, 3, 4, (((2, 1), (2, 2)),))
    assert _build("x", 32, 24, 3, 4, (((2, 1), (2,)),)).stages[0].trainable[0].stride == 2
