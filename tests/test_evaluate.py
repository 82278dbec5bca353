"""Labeled folders (readers, class tables, label rules), interval statistics, the eval loop and ``fixres-edge eval``.

Everything runs on tiny generated folders and a tiny ONNX "color" classifier: no ../shared data.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
cv2 = pytest.importorskip("cv2")
from cli_runner import run_cli  # noqa: E402
from tiny_images import color_image, make_folder, write_table  # noqa: E402
from tiny_models import color_model  # noqa: E402

from fixres_edge import cli  # noqa: E402
from fixres_edge.evaluate import (  # noqa: E402
    ClassTable, LabeledFolder, LabeledImage, ListReader, bootstrap_interval, evaluate, label_ranks,
    paired_comparison, progress_bar, read_all, scan_folder, spread, wilson_interval,
)
from fixres_edge.policy import Scale, ScalePolicy  # noqa: E402


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return color_model(tmp_path_factory.mktemp("model") / "tiny.onnx")


# ---------------------------------------------------------------------------------------------
# Readers and label rules
@pytest.mark.aarch64
def test_scan_is_sorted_and_reads_wnids(tmp_path):
    (tmp_path / "n00000002").mkdir()
    for name in ("n00000001_zebra.JPEG", "n00000000_12.jpg", "notes.txt", "n00000002/b.png", "n00000002/a.png",
                 "plain.png"):
        (tmp_path / name).write_bytes(b"x")
    found = [(p.relative_to(tmp_path).as_posix(), w, h) for p, w, h in scan_folder(tmp_path)]
    assert found == [("n00000000_12.jpg", "n00000000", None), ("n00000001_zebra.JPEG", "n00000001", "zebra"),
                     ("n00000002/a.png", "n00000002", None), ("n00000002/b.png", "n00000002", None),
                     ("plain.png", None, None)]


@pytest.mark.aarch64
def test_folders_list_the_image_extensions_classify_lists(tmp_path):
    # One list of extensions for labeled folders and for `classify DIR` (GIF included: it decodes).
    from fixres_edge.commands.classify import expand_paths

    for name in ("n00000000_a.gif", "n00000000_b.webp", "n00000000_c.txt"):
        (tmp_path / name).write_bytes(b"x")
    scanned = [p.name for p, _, _ in scan_folder(tmp_path)]
    assert scanned == ["n00000000_a.gif", "n00000000_b.webp"]
    assert [Path(p).name for p, _ in expand_paths([str(tmp_path)])] == scanned


def test_folder_with_table_reader_protocol(tmp_path):
    root = make_folder(tmp_path / "d", per_class=2)
    folder = LabeledFolder(root, num_classes=3)
    assert "classes.tsv" in folder.labels_source
    names = [item.name for item in folder]
    assert names == sorted(names) and len(folder) == 6
    first = [folder.get_next() for _ in range(7)]
    assert first[-1] is None and [i.name for i in first[:-1]] == names
    assert [i.label for i in first[:-1]] == [0, 0, 1, 1, 2, 2]
    folder.rewind()
    assert folder.get_next().name == names[0]
    assert read_all(ListReader(folder.items)) == list(folder.items)


def test_table_found_in_parent_and_explicit(tmp_path):
    root = make_folder(tmp_path / "photos", per_class=1, table=False)
    write_table(tmp_path / "imagenet-classes.tsv")
    assert "imagenet-classes.tsv" in LabeledFolder(root).labels_source
    plain = write_table(tmp_path / "wnids.txt", header=False)
    folder = LabeledFolder(root, classes=plain)
    assert [i.label for i in folder] == [0, 1, 2] and "wnids.txt" in folder.labels_source


def test_table_without_index_column_uses_line_order(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("wnid\tname\nn00000005\ta\nn00000001\tb\n", encoding="utf-8")
    assert dict(ClassTable.from_file(path).index) == {"n00000005": 0, "n00000001": 1}


@pytest.mark.parametrize("text, match", [
    ("", "is empty"),
    ("index\twnid\nzero\tn00000000\n", "line 2"),
    ("hello world\n", "not a WordNet id"),
    ("index\twnid\n0\tn00000000\n0\tn00000001\n", "same index"),
])
def test_bad_class_tables(tmp_path, text, match):
    path = tmp_path / "t.tsv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=match):
        ClassTable.from_file(path)


def test_labels_from_names_in_file_names_with_duplicate_names(tmp_path):
    # Index order = sorted wnids. "crane" names two classes; the files with unique names tell which.
    labels = ["apple", "crane", "cherry tree", "crane", "plum"]
    wnids = ["n00000010", "n00000020", "n00000030", "n00000040", "n00000050"]
    for w, name in zip(wnids, labels):
        (tmp_path / f"{w}_{name.replace(' ', '_')}.png").write_bytes(b"x")
    folder = LabeledFolder(tmp_path, labels=labels, num_classes=5)
    assert folder.labels_source == "class names in the file names"
    assert [i.label for i in folder] == [0, 1, 2, 3, 4]


def test_image_folder_sorted_order_when_all_classes_present(tmp_path):
    root = make_folder(tmp_path / "d", per_class=1, layout="imagefolder", table=False)
    folder = LabeledFolder(root, num_classes=3)
    assert folder.labels_source == "sorted wnid folders"
    assert [i.label for i in folder] == [0, 1, 2]


def test_unresolvable_labels_and_empty_folders(tmp_path):
    root = make_folder(tmp_path / "d", per_class=1, table=False)
    with pytest.raises(ValueError, match="cannot tell the class index of n00000000.*class table"):
        LabeledFolder(root, num_classes=10)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no image files"):
        LabeledFolder(empty)
    (empty / "cat.png").write_bytes(b"x")
    with pytest.raises(ValueError, match="no labeled images"):
        LabeledFolder(empty)
    with pytest.raises(FileNotFoundError):
        LabeledFolder(tmp_path / "missing")
    write_table(root / "classes.tsv")
    with pytest.raises(ValueError, match="outside the model's 0..1"):
        LabeledFolder(root, num_classes=2)


def test_unlabeled_files_are_skipped_and_limit_spreads(tmp_path):
    root = make_folder(tmp_path / "d", per_class=4)
    cv2.imwrite(str(root / "holiday.png"), color_image("red"))
    folder = LabeledFolder(root, limit=3)
    assert folder.skipped == ("holiday.png",) and folder.total == 12
    assert [i.label for i in folder] == [0, 1, 2]  # evenly spaced over the sorted list
    assert spread(list(range(10)), 4) == [0, 2, 5, 7] and spread([1, 2], 5) == [1, 2]
    with pytest.raises(ValueError, match="limit must be a positive integer"):
        LabeledFolder(root, limit=0)


# ---------------------------------------------------------------------------------------------
# Statistics
@pytest.mark.aarch64
def test_wilson_interval_known_values():
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = wilson_interval(10, 10)
    assert high == 1.0 and low == pytest.approx(0.7225, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_bootstrap_and_paired_comparison():
    rng = np.random.default_rng(3)
    values = rng.random(400) < 0.8
    low, high = bootstrap_interval(values, seed=1)
    assert low < values.mean() < high and high - low < 0.1
    a = np.array([True] * 90 + [False] * 10)
    b = a.copy()
    b[:10] = False          # b loses 10 that a had
    result = paired_comparison(a, b)
    assert (result["only_a"], result["only_b"]) == (10, 0)
    assert result["diff"] == pytest.approx(-0.1)
    assert result["p_mcnemar"] == pytest.approx(2 / 1024)
    assert paired_comparison(a, a)["p_mcnemar"] == 1.0
    with pytest.raises(ValueError, match="same length"):
        paired_comparison(a, a[:5])


@pytest.mark.aarch64
def test_label_ranks_follow_top_k_tie_order():
    from fixres_edge.prediction import top_k

    rng = np.random.default_rng(0)
    probs = rng.integers(0, 4, (50, 7)).astype(np.float32)  # many ties
    labels = rng.integers(0, 7, 50)
    ranks = label_ranks(probs, labels)
    for row, label, rank in zip(probs, labels, ranks):
        assert top_k(row, 7).index(label) == rank


# ---------------------------------------------------------------------------------------------
# Evaluation loop and CLI
def test_evaluate_counts_and_timings(tmp_path, tiny_model):
    from fixres_edge.runtime import Classifier

    root = make_folder(tmp_path / "d", per_class=3, wrong=2)
    clf = Classifier(tiny_model, threads=1)
    ticks = []
    result = evaluate(clf, LabeledFolder(root, num_classes=3), progress=lambda: ticks.append(1))
    summary = result.summary()
    assert summary["n"] == 9 and len(ticks) == 9
    assert summary["top1"] == pytest.approx(7 / 9) and summary["top5"] == 1.0
    assert summary["top1_ci95"][0] < 7 / 9 < summary["top1_ci95"][1]
    assert summary["answered"] == {"16@0.875": 9}
    assert summary["infer_ms_mean"] > 0 and summary["total_ms_mean"] >= summary["infer_ms_mean"]


def test_evaluate_arrays_and_bad_items(tiny_model):
    from fixres_edge.runtime import Classifier

    clf = Classifier(tiny_model, threads=1)
    items = [LabeledImage(color_image("blue"), 2, name="blue"), LabeledImage(b"not an image", 0, name="junk"),
             LabeledImage(color_image("red"), 7, name="bad label")]
    result = evaluate(clf, ListReader(items))
    assert result.n == 1 and result.top1_correct.tolist() == [True]
    assert [name for name, _ in result.errors] == ["junk", "bad label"]
    assert "outside the model's 0..2" in result.errors[1][1]


def test_cli_eval_text_and_json(tmp_path, tiny_model, capsys):
    root = make_folder(tmp_path / "d", per_class=2, wrong=1)
    code, out, err = run_cli(["eval", str(root), "--model", str(tiny_model), "--threads", "1"], capsys)
    assert code == 0, err
    assert "top-1    83.3 %" in out and "top-5" in out and "answered 16@0.875 6 (100.0 %)" in out
    code, out, err = run_cli(["eval", str(root), "--model", str(tiny_model), "--threads", "1", "--json",
                              "--res", "24", "--limit", "3"], capsys)
    data = json.loads(out)
    assert code == 0 and {"n", "top1", "top5", "infer_ms_mean", "total_ms_mean", "top1_ci95"} <= set(data)
    assert data["n"] == 3 and data["answered"] == {"24@0.875": 3}
    assert err == ""  # no progress bar when stderr is not a terminal


def test_cli_eval_policy_and_saved_predictions(tmp_path, tiny_model, capsys):
    root = make_folder(tmp_path / "d", per_class=2)
    policy = ScalePolicy(model="tiny", scales=(Scale(8), Scale(24)), mode="cascade", threshold=0.999)
    policy_path = policy.save(tmp_path / "p.json")
    saved = tmp_path / "pred.jsonl"
    code, out, err = run_cli(["eval", str(root), "--model", str(tiny_model), "--policy", str(policy_path),
                              "--json", "--save-predictions", str(saved)], capsys)
    data = json.loads(out)
    assert code == 0 and data["policy"]["mode"] == "cascade"
    assert sum(data["answered"].values()) == 6 and "24@0.875" in data["answered"]
    rows = [json.loads(line) for line in saved.read_text().splitlines()]
    assert [r["name"] for r in rows] == sorted(r["name"] for r in rows) and len(rows[0]["top5"]) == 3


def test_cli_eval_errors(tmp_path, tiny_model, capsys):
    root = make_folder(tmp_path / "d", per_class=1)
    (root / "n00000001_broken.png").write_bytes(b"not a png")
    code, out, err = run_cli(["eval", str(root), "--model", str(tiny_model), "--json"], capsys)
    assert code == 1 and json.loads(out)["errors"] == 1 and "n00000001_broken.png" in err
    code, _, err = run_cli(["eval", str(tmp_path / "nowhere"), "--model", str(tiny_model)], capsys)
    assert code == 1 and err.count("\n") == 1 and "not found" in err
    code, _, err = run_cli(["eval", str(root), "--model", str(tiny_model), "--res", "12"], capsys)
    assert code == 1 and "not a multiple of 8" in err


def test_progress_bar_is_optional(monkeypatch):
    bar = progress_bar(3, "x", enabled=False)
    bar.update()
    bar.close()
    monkeypatch.setitem(sys.modules, "tqdm", None)  # tqdm not installed
    bar = progress_bar(3, "x", enabled=True)
    bar.update()
    bar.close()
    assert type(bar).__name__ == "_NoBar"


def test_wilson_is_inside_unit_interval_everywhere():
    for n in (1, 2, 7, 100):
        for k in range(n + 1):
            low, high = wilson_interval(k, n)
            assert 0.0 <= low <= k / n <= high <= 1.0 and not math.isnan(low)


@pytest.mark.parametrize("argv", [["--help"], ["eval", "--help"], ["calibrate", "--help"]])
def test_help_texts_render(argv, capsys):
    # argparse %-formats help strings: a stray "%" breaks every --help.
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    out, _ = capsys.readouterr()
    assert exit_info.value.code == 0 and "usage:" in out
