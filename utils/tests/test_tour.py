"""The tour runs registered demos, compares each with its target, and says so."""

from __future__ import annotations

import json
import textwrap

import pytest

from utils import tour


def make_lesson(root, name="98_Fake"):
    lesson = root / name
    lesson.mkdir()
    (lesson / "__init__.py").write_text("")
    (lesson / "demo.py").write_text(textwrap.dedent("""\
        import argparse
        def main(argv=None):
            p = argparse.ArgumentParser()
            p.add_argument("--dataset")
            p.add_argument("--out")
            p.add_argument("--no-progress", action="store_true")
            p.add_argument("--score", type=float, default=0.9)
            a = p.parse_args(argv)
            print("training on", a.dataset)
            if a.dataset == "broken":
                raise RuntimeError("boom")
            return {"test_accuracy": a.score, "note": "text is ignored"}
        """))
    (lesson / "tour.py").write_text(textwrap.dedent(f"""\
        from utils.tour import TourStop
        STOPS = [
            TourStop("Good", "L1", "{name}.demo", "toy", "test_accuracy", 0.8),
            TourStop("Weak", "L2", "{name}.demo", "toy", "test_accuracy", 0.95),
            TourStop("Low loss", "L3", "{name}.demo", "toy", "test_accuracy", 0.5,
                     higher_is_better=False, args=("--score", "0.25")),
            TourStop("Broken", "L3", "{name}.demo", "broken", "test_accuracy", 0.5),
        ]
        """))
    return lesson


def test_tour_reports_reached_missed_and_failed(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(tmp_path))
    make_lesson(tmp_path)
    out = tmp_path / "runs"
    code = tour.main(["--root", str(tmp_path), "--out", str(out)])
    assert code == 1  # one missed, one failed
    printed = capsys.readouterr().out
    assert "2 of 4 demos missed their target" in printed
    results = json.loads((out / "results.json").read_text())
    assert [r["passed"] for r in results] == [True, False, True, False]
    assert [r["achieved"] for r in results] == [0.9, 0.9, 0.25, None]
    assert "RuntimeError: boom" in results[3]["error"]
    assert results[0]["metrics"] == {"test_accuracy": 0.9}
    table = (out / "results.md").read_text().splitlines()
    assert table[0].split("|")[1].strip() == "model"
    assert "| Good " in table[2] and "| ok " in table[2] and "| MISSED " in table[3]
    log = (out / "98_Fake" / "L1_demo_toy" / "log.txt").read_text()
    assert "training on toy" in log


def test_tour_filters_by_level_and_all_pass(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(tmp_path))
    make_lesson(tmp_path)
    code = tour.main(["--root", str(tmp_path), "--out", str(tmp_path / "r"), "--level", "L1"])
    assert code == 0
    assert "All 1 demos reached their targets" in capsys.readouterr().out


def test_tour_lists_and_rejects_unknown_lessons(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(tmp_path))
    make_lesson(tmp_path)
    assert tour.main(["--root", str(tmp_path), "--list"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 4
    assert tour.main(["--root", str(tmp_path), "--lesson", "42"]) == 2


def test_every_registered_stop_names_a_runnable_script():
    """Each real lesson's tour.py names modules that exist and expose main()."""
    from utils.lessons import import_lesson

    for lesson, stops in tour.discover().items():
        assert stops, f"{lesson}/tour.py registers no stops"
        for s in stops:
            assert callable(import_lesson(s.module).main), s.module
            assert s.level in {"L1", "L2", "L3", "L4"}


def _recomputed_baseline(dataset: str, metric: str) -> float:
    """What a model that ignores its input scores on a lesson's default data."""
    import numpy as np

    from utils import data_loaders as dl

    if dataset in ("digits", "breast_cancer") and metric in ("test_accuracy",
                                                             "zero_shot_accuracy"):
        split = dl.load_arrays(dataset)
        classes, counts = np.unique(split.y_train, return_counts=True)
        return float(np.mean(split.y_test == classes[np.argmax(counts)]))
    if dataset == "moons":
        _, y = dl.make_moons(1000, noise=0.2, seed=0)
        return float(max(np.mean(y), 1 - np.mean(y)))
    if dataset == "diabetes":
        split = dl.load_arrays(dataset)
        residual = split.y_test - split.y_train.mean()
        return float(1 - np.sum(residual ** 2) / np.sum((split.y_test - split.y_test.mean()) ** 2))
    if dataset == "adding":
        _, y_train = dl.make_adding_problem(4000, 50, seed=0)
        _, y_test = dl.make_adding_problem(4000, 50, seed=1)
        return float(np.mean((y_test - y_train.mean()) ** 2))
    if metric == "masked_accuracy":  # lesson 08's generated sentence pairs
        from utils.lessons import import_lesson

        corpus = import_lesson("08_BERT.pytorch_lowlevel.corpus")
        train, test = corpus.make_pairs(8000, seed=0), corpus.make_pairs(1000, seed=1)
        seen = set(map(corpus.words_key, train.input_ids))
        test = test[[corpus.words_key(row) not in seen for row in test.input_ids]]
        real = train.input_ids[train.input_ids > corpus.MASK_ID]  # no specials, no padding
        majority = np.bincount(real.numpy()).argmax()
        test_real = test.input_ids[test.input_ids > corpus.MASK_ID].numpy()
        return float(np.mean(test_real == majority))
    if dataset == "generated" and metric == "val_loss":  # lesson 09's generated language
        from utils.lessons import import_lesson

        corpus = import_lesson("09_GPT.pytorch_lowlevel.corpus")
        return float(corpus.unigram_loss(*corpus.train_val_text()))
    if dataset == "grammar-acceptability":  # lesson 08's fine-tuning task, default split
        from argparse import Namespace

        from utils.lessons import import_lesson

        task = import_lesson("08_BERT.paper.train_classifier")
        _, y_train, _, y_test, _ = task.load_task(Namespace(dataset=dataset, n_train=4000,
                                                            n_test=1000, seed=0))
        return float(np.mean(y_test == np.bincount(y_train).argmax()))
    if metric == "exact_match":
        src, _ = dl.make_copy_task(2000, 10, 12, seed=0, reserved=2)
        test, _ = dl.make_copy_task(2000, 10, 12, seed=1, reserved=2)
        rows, counts = np.unique(src, axis=0, return_counts=True)
        return float(np.mean(np.all(test == rows[np.argmax(counts)], axis=1)))
    raise KeyError((dataset, metric))


def _stops():
    return [(lesson, stop) for lesson, stops in tour.discover().items() for stop in stops]


@pytest.mark.parametrize("lesson, stop", _stops(), ids=lambda x: getattr(x, "name", x))
def test_every_tour_target_clearly_beats_its_trivial_baseline(lesson, stop):
    assert stop.baseline is not None and stop.baseline_name, (
        f"{lesson} {stop.name}: give the score of a model that ignores its input")
    if stop.higher_is_better:
        # at least a quarter of the way from the baseline to a perfect 1.0
        assert stop.target >= stop.baseline + 0.25 * (1.0 - stop.baseline), stop
    else:
        # at least 5 % below the baseline's loss
        assert stop.target <= 0.95 * stop.baseline, stop


@pytest.mark.parametrize("lesson, stop", [(lesson, s) for lesson, s in _stops()
                                          if s.dataset != "digits" or "VAE" not in s.model],
                         ids=lambda x: getattr(x, "name", x))
def test_tour_baselines_are_what_a_constant_model_scores(lesson, stop):
    expected = _recomputed_baseline(stop.dataset, stop.metric)
    assert stop.baseline == pytest.approx(expected, abs=0.01), (lesson, stop.name, expected)
