"""Presentation of a calibration: the Pareto table, the text report and the plot (synthetic scores, no model)."""
from __future__ import annotations

import sys

import pytest

from synthetic_scores import A, B, easy_hard_scores

from fixres_edge.calibrate import (
    Calibration, Latency, format_table, make_policy, plot_pareto, report_text, scales_text, search_policies,
)
from fixres_edge.policy import Scale


@pytest.fixture(scope="module")
def calibration() -> Calibration:
    scores = easy_hard_scores()
    costs = {A: 1.0, B: 3.0}
    result = search_policies(scores, costs, train_scale=B)
    latency = {s: Latency(s, c, c / 3.0, c / 2, c / 2, c, c, 7) for s, c in costs.items()}
    policy = make_policy(result, costs, model="synthetic", device="test device", threads=1)
    return Calibration(scores, latency, result, policy, (), {"collect": 1.5, "search": 0.5}, "test device")


@pytest.mark.aarch64
def test_scales_text_is_compact():
    sizes = [Scale(8), Scale(16)]
    assert scales_text(sizes, "cascade", sizes) == "8>16"
    zoom = [Scale(16, 1.0), Scale(16, 0.75)]
    assert scales_text(zoom, "ensemble", zoom) == "1+0.75"
    mixed = [Scale(8, 1.0), Scale(16, 0.75)]
    assert scales_text(mixed[1:], "single", mixed) == "16@0.75"


def test_table_marks_the_chosen_row(calibration):
    s = calibration.search
    lines = format_table(s, s.pareto, calibration.scores.scales)
    assert lines[0].split()[:3] == ["policy", "sizes", "thr"]
    chosen = [line for line in lines if line.endswith("<- chosen")]
    assert len(chosen) == 1 and chosen[0].startswith("cascade (last)") and "160>224" in chosen[0]
    assert "100.0%" in chosen[0] and "0.53x" in chosen[0]  # 1.6 ms against 3 ms for the training size


def test_report_text(calibration):
    text = report_text(calibration, total_s=3.0, policy_path="p.json")
    lines = text.splitlines()
    assert lines[0] == "model synthetic, 50 images, scales 160@0.875, 224@0.875"
    assert "medians of 7 interleaved rounds" in lines[1] and "test device" in lines[1]
    assert any(line.startswith("chosen   cascade 160@0.875>224@0.875 (last), threshold 0.425") for line in lines)
    assert "time     3.0 s (collect 1.5 s, search 0.5 s)" in lines
    assert lines[-1] == "policy   written to p.json"
    every = report_text(calibration, show_all=True)
    assert len(every.splitlines()) > len(lines) and every.splitlines()[-1].startswith("policy   not written")


def test_plot(calibration, tmp_path):
    pytest.importorskip("matplotlib")
    path = plot_pareto(calibration.search, tmp_path / "pareto.png", title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib(calibration, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(RuntimeError, match=r"pip install 'fixres-edge\[plot\]'"):
        plot_pareto(calibration.search, tmp_path / "x.png")
