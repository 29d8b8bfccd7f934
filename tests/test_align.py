"""The built-in aligner: the prior, the forward-sum loss and MAS against brute force, and learning a known alignment."""
import itertools
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

import align
from training.presets import preset


def monotonic_paths(T, N):
    """Every map t -> n that is non-decreasing, starts at 0, ends at N-1 and visits every n (each phoneme >= 1 frame)."""
    for cuts in itertools.combinations(range(1, T), N - 1):
        bounds = (0,) + cuts + (T,)
        yield [n for n in range(N) for _ in range(bounds[n + 1] - bounds[n])]


def test_beta_binomial_prior_is_a_distribution_with_a_diagonal_mode():
    lp = align.beta_binomial_log_prior(7, 40)
    assert lp.shape == (40, 7)
    assert torch.allclose(lp.exp().sum(1), torch.ones(40), atol=1e-5)
    modes = lp.argmax(1)
    assert modes[0] == 0 and modes[-1] == 6 and bool((modes.diff() >= 0).all())
    assert torch.allclose(align.beta_binomial_log_prior(1, 5), torch.zeros(5, 1), atol=1e-6)


def test_forward_sum_loss_is_minus_log_of_the_sum_over_monotonic_paths():
    torch.manual_seed(0)
    T, N = 6, 3
    log_attn = torch.log_softmax(torch.randn(1, T, N), -1)
    # with the blank made impossible, CTC sums exactly over the monotonic paths (each phoneme >= 1 frame)
    loss = align.forward_sum_loss(log_attn, torch.ones(1, N, dtype=torch.bool), torch.ones(1, T, dtype=torch.bool),
                                  blank_logprob=-1e4)
    total = sum(math.exp(sum(float(log_attn[0, t, n]) for t, n in enumerate(p))) for p in monotonic_paths(T, N))
    assert float(loss) == pytest.approx(-math.log(total) / N, rel=1e-4)


def test_forward_sum_loss_ignores_padding():
    torch.manual_seed(1)
    a = torch.log_softmax(torch.randn(1, 5, 2), -1)
    padded = torch.full((1, 8, 4), -math.inf)
    padded[0, :5, :2] = a[0]
    pm, fm = torch.tensor([[1, 1, 0, 0]]).bool(), torch.tensor([[1] * 5 + [0] * 3]).bool()
    one = align.forward_sum_loss(a, torch.ones(1, 2).bool(), torch.ones(1, 5).bool())
    assert float(align.forward_sum_loss(padded, pm, fm)) == pytest.approx(float(one), rel=1e-5)


def test_hard_alignment_is_the_best_monotonic_path():
    torch.manual_seed(2)
    for T, N in ((7, 3), (5, 5), (9, 1)):
        log_attn = torch.log_softmax(torch.randn(1, T, N), -1)
        hard = align.hard_alignment(log_attn, torch.ones(1, N).bool(), torch.ones(1, T).bool())[0]
        best = max(monotonic_paths(T, N), key=lambda p: sum(float(log_attn[0, t, n]) for t, n in enumerate(p)))
        assert hard.argmax(1).tolist() == best
        assert bool((hard.sum(1) == 1).all()) and bool((hard.sum(0) >= 1).all())


def test_bin_loss_closed_form():
    log_attn = torch.log(torch.tensor([[[0.5, 0.5], [0.25, 0.75]]]))
    hard = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    assert float(align.bin_loss(log_attn, hard)) == pytest.approx(-(math.log(0.5) + math.log(0.75)) / 2)


def test_mel_frames_shape_and_normalisation():
    cfg = preset("tiny").aligner
    wav = np.random.default_rng(0).standard_normal(200 * 30 + 57).astype(np.float32) * 0.1
    m = align.mel_frames(wav, cfg)
    assert m.shape == (cfg.n_mels, 30)
    assert torch.allclose(m.mean(1), torch.zeros(cfg.n_mels), atol=1e-4)
    with pytest.raises(ValueError, match="shorter than one frame"):
        align.mel_frames(np.zeros(100, np.float32), cfg)


def synthetic_corpus(n, seed, vocab=8, n_mels=12):
    """Utterances whose frames are a noisy, phoneme-specific spectrum: the alignment is known exactly."""
    rng = np.random.default_rng(seed)
    spectra = np.random.default_rng(99).standard_normal((vocab, n_mels)) * 2
    items, truth = [], []
    for _ in range(n):
        ph = [int(rng.integers(1, vocab))]
        while len(ph) < rng.integers(4, 9):                    # no phoneme twice in a row: every boundary is visible
            ph.append(int((ph[-1] + rng.integers(1, vocab - 1) - 1) % (vocab - 1) + 1))
        ph = np.array(ph)
        d = rng.integers(2, 7, size=len(ph))
        frames = np.repeat(spectra[ph], d, axis=0) + 0.3 * rng.standard_normal((d.sum(), n_mels))
        items.append((ph, torch.tensor(frames.T, dtype=torch.float32)))
        truth.append(d)
    return items, truth


def test_the_aligner_learns_a_known_alignment():
    torch.set_num_threads(1)
    train, _ = synthetic_corpus(64, 0)
    test, truth = synthetic_corpus(16, 1)
    cfg = replace(preset("tiny").aligner, n_mels=12, dim=32, batch_size=8, steps=200, lr=1e-2)
    net = align.fit(train, 8, cfg, progress=False)
    pred = align.durations(net, test)
    assert all(p.sum() == t.sum() and (p >= 1).all() for p, t in zip(pred, truth))
    exact = np.mean([(np.cumsum(p) == np.cumsum(t)).mean() for p, t in zip(pred, truth)])
    assert exact > 0.95, exact


def test_fit_refuses_items_shorter_than_their_phonemes():
    items = [(np.array([1, 2, 3]), torch.zeros(12, 2))]
    with pytest.raises(ValueError, match="fewer frames than phonemes"):
        align.fit(items, 4, preset("tiny").aligner, progress=False)


def test_checkpoint_round_trip(tmp_path):
    net = align.Aligner(5, preset("tiny").aligner)
    align.save(net, tmp_path / "a.pt", ["_", "a", "b", "c", "d"])
    back, phonemes = align.load(tmp_path / "a.pt")
    assert phonemes == ["_", "a", "b", "c", "d"]
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), back.state_dict().values()))


def test_to_codec_frames_rounds_boundaries_and_keeps_the_total():
    d = np.array([3, 1, 4, 2, 6])                                   # aligner frames of 100 samples: 16 = 8 codec frames
    out = align.to_codec_frames(d, 8, 100)
    assert out.sum() == 8 and (out >= 0).all()
    assert np.array_equal(np.cumsum(out)[:-1], np.rint(np.cumsum(d)[:-1] / 2).astype(int))
    assert np.array_equal(align.to_codec_frames(d, 16, 200), d)     # at the codec's own rate: unchanged


def test_drop_short_pauses_keeps_long_ones_and_the_total():
    ph = ["_", "HH", "AY1", "_?", "DH", "EH1", "R", "_?", "Y", "UW1", "_"]
    d = np.array([5, 2, 3, 6, 2, 4, 1, 3, 2, 5, 4])
    out, dd = align.drop_short_pauses(ph, d, min_frames=4)
    assert out == ["_", "HH", "AY1", "_", "DH", "EH1", "R", "Y", "UW1", "_"]
    assert dd.sum() == d.sum() and list(dd) == [5, 2, 3, 6, 2, 4, 1 + 2, 2 + 1, 5, 4]
    assert align.aligner_tokens(ph).count("_") == 4 and "_?" not in align.aligner_tokens(ph)
    out, dd = align.drop_short_pauses(["_", "A", "_?", "B", "_"], np.array([1, 2, 0, 3, 1]))
    assert out == ["_", "A", "B", "_"] and list(dd) == [1, 2, 3, 1]          # a pause of 0 frames vanishes


def test_shared_stress_embeddings():
    from dataclasses import replace
    cfg = replace(preset("tiny").aligner, share_stress=True)
    net = align.Aligner(["_", "AH0", "AH1", "B", "ˈiə", "iə"], cfg)
    assert net.embed.num_embeddings == 4 and net.stress_embed.num_embeddings == 4     # _ AH B iə; '' 0 1 ˈ
    e = lambda i: net.embed(net.base_of[i]) + net.stress_embed(net.stress_of[i])
    assert torch.equal(net.base_of[1], net.base_of[2]) and torch.equal(net.base_of[4], net.base_of[5])
    assert torch.allclose(e(1) - net.stress_embed(net.stress_of[1]), e(2) - net.stress_embed(net.stress_of[2]))
