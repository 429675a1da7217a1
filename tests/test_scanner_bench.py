"""``kiosk bench scanner`` on a cut-down corpus: it scores exact payloads per condition and counts false positives."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from scanner import corpus
from scanner.bench import bench_scanner


@pytest.fixture
def small_corpus(monkeypatch):
    monkeypatch.setattr(corpus, "RESOLUTIONS", ((640, 480),))
    monkeypatch.setattr(corpus, "MEDIA", ("phone",))
    monkeypatch.setattr(corpus, "PAYLOADS", {"cccd": (corpus.CCCD, "m")})
    monkeypatch.setattr(corpus, "PX_PER_MODULE", (4.0,))
    monkeypatch.setattr(corpus, "CONDITIONS", {"clean": {}, "inverted": {"inverted": True}})
    monkeypatch.setattr(corpus, "EMPTY_SCENES", 4)


def test_the_report_scores_each_configuration_by_condition(small_corpus):
    report = bench_scanner(argparse.Namespace(seed=0, save_frames=None))
    configs = report["configurations"]
    assert report["corpus"]["frames"] == {"with_code": 2, "target": 2, "empty": 4}
    # zbar cannot read light-on-dark codes; both zxing-cpp and the pipeline can.
    assert configs["pyzbar"]["decode_rate"]["condition"] == {"clean": 1.0, "inverted": 0.0}
    assert configs["pipeline"]["decode_rate"]["condition"] == {"clean": 1.0, "inverted": 1.0}
    assert configs["pipeline"]["decode_rate"]["target"] == 1.0
    assert all(c["false_positives"] == 0 and c["misreads"] == 0 for c in configs.values())
    assert set(configs["pipeline"]["ms_per_frame"]["640x480"]) == {"code", "empty"}
    assert report["pipeline_stage_that_read"]["zxing"] == 2
    assert report["table"][0] == "| | pyzbar | zxing-cpp | pipeline |"
    assert any(line.startswith("| condition: inverted | 0.0% | 100.0% | 100.0% |") for line in report["table"])


def test_the_corpus_is_the_same_for_the_same_seed(small_corpus, tmp_path):
    first = [frame for _, frame in corpus.scenes(seed=1)]
    again = [frame for _, frame in corpus.scenes(seed=1)]
    other = [frame for _, frame in corpus.scenes(seed=2)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_saved_frames_are_named_after_their_conditions(small_corpus, tmp_path):
    bench_scanner(argparse.Namespace(seed=0, save_frames=str(tmp_path)))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 6
    assert any(n.startswith("640x480-phone-cccd-4px-inverted-seed") for n in names)
