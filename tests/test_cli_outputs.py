"""`skmtl compare` outputs: per_task.csv, report.html and a transfer plot that stays readable
and bounded in size from a few tasks to thousands."""

import csv
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from skmtl import IndependentTasks
from skmtl._compare import ComparisonResult
from skmtl.cli import MAX_TASKS_SHOWN, _transfer_display, main
from skmtl.datasets import make_multitask_regression


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def fake_result(n_tasks, models=("stl", "pooled", "mean_clustered"), seed=0):
    """A comparison result with random per-task fields, as the engine would give (no fit)."""
    rng = np.random.RandomState(seed)
    result = ComparisonResult(tasks=np.arange(n_tasks), task_type="regression", n_splits=5)
    for model in models:
        gain = np.zeros(n_tasks) if model == "stl" else rng.normal(size=n_tasks)
        se = np.abs(rng.normal(scale=0.3, size=n_tasks))
        result.per_task[model] = {
            "score": rng.normal(size=n_tasks), "reference_score": rng.normal(size=n_tasks),
            "gain": gain, "gain_se": se, "negative_transfer": gain < -se,
            "n_folds": np.full(n_tasks, 5), "n_observed": rng.randint(2, 40, size=n_tasks)}
        result.summary.append({"model": model, "mean_score": 0.0, "wins": 0, "losses": 0,
                               "negative_transfer": 0, "fit_time": 0.0})
    return result


def test_per_task_csv_and_report_html(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    X, Y = make_multitask_regression(n_samples=60, n_features=4, n_tasks=3, n_informative=3,
                                     random_state=0)
    path = tmp_path / "w.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["a", "b", "c", "d", "t0", "t1", "t2"])
        writer.writerows(np.column_stack([X, Y]))
    out = tmp_path / "o"
    assert main(["compare", "--csv", str(path), "--targets", "t0,t1,t2", "--models", "pooled",
                 "--cv", "3", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out

    # per_task.csv: the values of scores.csv, one row per task, models side by side
    scores, per_task = read_csv(out / "scores.csv"), read_csv(out / "per_task.csv")
    metric = "neg_mean_squared_error"
    assert list(per_task[0]) == ["task", "n_observed", f"stl_score_{metric}",
                                 f"pooled_score_{metric}", f"pooled_gain_{metric}"]
    assert [r["task"] for r in per_task] == ["t0", "t1", "t2"]
    for row in scores:
        line = next(r for r in per_task if r["task"] == row["task"])
        assert line["n_observed"] == row["n_observed"]
        assert line[f"{row['model']}_score_{metric}"] == row["score"]
        if row["model"] != "stl":
            assert line[f"{row['model']}_gain_{metric}"] == row["gain"]

    # report.html: self-contained (no http), with the printed table's values and the plot
    html = (out / "report.html").read_text()
    assert "http" not in html
    assert '<img src="data:image/png;base64,' in html
    for line in printed.splitlines():
        if line.startswith(("stl ", "pooled ")):
            for cell in line.split():
                assert f"<td>{cell}</td>" in html
    assert "<p>None.</p>" in html  # no model left out


def test_report_lists_the_models_left_out_with_their_reason(tmp_path):
    from skmtl.cli import _write_report

    result = fake_result(5)
    result.skipped["deep_hard"] = "torch not installed"
    path = _write_report(result, str(tmp_path), "fake", ["a note"], "no plot: a reason")
    html = open(path).read()
    assert "<li><b>deep_hard</b>: torch not installed</li>" in html
    assert "<li>a note</li>" in html and "no plot: a reason" in html


@pytest.mark.parametrize("n_tasks", [5, 65, 2500])
def test_transfer_plot_stays_readable_and_bounded(n_tasks):
    pytest.importorskip("matplotlib")
    result = fake_result(n_tasks)
    displays = _transfer_display(result)
    figure = displays["pooled"].figure_
    width, height = figure.get_size_inches() * 100  # pixels at the saved dpi
    assert width <= 1600 and height <= 2 * 3.2 * 100
    for model, display in displays.items():
        gain = result.per_task[model]["gain"]
        shown = [b.get_height() for b in display.bars_]
        if n_tasks <= MAX_TASKS_SHOWN:
            np.testing.assert_allclose(shown, np.sort(gain))
            assert "worst" not in display.ax_.get_title()
        else:
            half = MAX_TASKS_SHOWN // 2
            np.testing.assert_allclose(shown, np.r_[np.sort(gain)[:half],
                                                    np.sort(gain)[-half:]])
            assert (f"the {half} worst and {half} best of {n_tasks} tasks"
                    in display.ax_.get_title())


def test_library_warnings_print_as_one_line(tmp_path, capsys, monkeypatch):
    import warnings

    import skmtl.cli as cli

    def warn_and_fail(args):
        warnings.warn("The best alpha (1)\n is the largest value tried.", UserWarning)
        raise ValueError("stop here")

    monkeypatch.setattr(cli, "_compare", warn_and_fail)
    assert cli.main(["compare", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == ["skmtl: warning: The best alpha (1) is the largest value tried. (UserWarning)",
                   "skmtl: error: stop here"]


def test_models_that_score_exactly_alike_are_said(capsys):
    # a small `compare --focus` run printed gradnorm and lbtw rows equal to multi_task's, with
    # no word on why (early stopping kept the first epoch; LBTW's one batch per epoch)
    from types import SimpleNamespace

    from skmtl.cli import _report_identical

    def run(score, se):
        return {"score": np.array([score]), "gain_se": np.array([se])}

    result = SimpleNamespace(per_task={
        "single_task": run(-3.91, 0.0), "multi_task": run(-4.0497, 1.35),
        "gradnorm": run(-4.0497, 1.35), "lbtw": run(-4.0497, 1.35),
        "finetune": run(-4.0497, 1.36),  # the same mean, another spread: not the same
    })
    notes = []
    _report_identical(result, notes)
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    assert out[0].startswith("gradnorm, lbtw scored exactly as multi_task, to the last digit "
                             "(the same predictions in every fold).")
    assert notes == out  # in report.html too
    _report_identical(SimpleNamespace(per_task={"stl": run(-1.0, 0.0), "pooled": run(-1.1, .2)}),
                      notes)
    assert capsys.readouterr().out == "" and len(notes) == 1


class WarningRidge(Ridge):
    """A Ridge whose fit warns, as a linear *CV model at the edge of its grid does."""

    def fit(self, X, y, sample_weight=None):
        warnings.warn("The best alpha (1)\n is the largest value tried.", UserWarning)
        return super().fit(X, y, sample_weight=sample_weight)


def test_report_keeps_the_warnings_and_notes_of_the_run_and_no_stale_plot(tmp_path, capsys,
                                                                          monkeypatch):
    """report.html held the data's warnings but not those of the fits, nor the line on tasks
    whose score is undefined in some folds; and a run without a plot left the previous run's
    transfer.png in --out, contradicting the new files."""
    pytest.importorskip("matplotlib")
    from skmtl._compare import MODELS, ModelSpec

    monkeypatch.setitem(MODELS, "warner", ModelSpec(
        "warner", lambda task_type, device: IndependentTasks(WarningRidge()), "warns", False,
        None, False))
    X, Y = make_multitask_regression(n_samples=40, n_features=3, n_tasks=2, n_informative=3,
                                     random_state=0)
    Y[3:, 1] = np.nan  # t1: 3 labels, so some of its test folds hold one (no R^2 there)
    path = tmp_path / "w.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["a", "b", "c", "t0", "t1"])
        writer.writerows(np.column_stack([X, Y]))
    out = tmp_path / "o"
    data = ["compare", "--csv", str(path), "--targets", "t0,t1", "--cv", "2", "--scoring", "r2",
            "--out", str(out), "--quiet"]
    assert main([*data, "--models", "warner", "warner"]) == 0
    printed = capsys.readouterr()
    assert "models: stl, warner\n" in printed.out  # a model named twice runs once
    warning = "The best alpha (1) is the largest value tried. (UserWarning)"
    assert f"skmtl: warning: {warning}" in printed.err
    html = (out / "report.html").read_text(encoding="utf-8")
    assert f"<li>Warning: {warning}</li>" in html
    assert "<li>1 task(s) have too few test labels in some folds for their R^2 there (t1)" in html
    assert (out / "transfer.png").is_file()

    assert main([*data, "--models", "stl"]) == 0
    assert "transfer.png left out: no model besides stl." in capsys.readouterr().out
    assert not (out / "transfer.png").exists()
    assert "transfer.png left out: no model besides stl." in (out / "report.html").read_text(
        encoding="utf-8")


def test_scores_files_are_utf8_whatever_the_locale(tmp_path):
    """scores.csv and per_task.csv were written in the locale's encoding: a task named
    'Genève' or '東京' failed after the whole run where that encoding cannot write it
    (cp1252 on Windows cannot write 東京; the C locale, neither)."""
    code = ("import sys; import numpy as np; from test_cli_outputs import fake_result; "
            "from skmtl.cli import _write_scores; result = fake_result(2); "
            "result.tasks = np.array(['Gen\\u00e8ve', '\\u6771\\u4eac'], dtype=object); "
            "_write_scores(result, sys.argv[1])")
    env = dict(os.environ, LC_ALL="C", LANG="C", PYTHONUTF8="0", PYTHONCOERCECLOCALE="0",
               PYTHONPATH=os.pathsep.join([os.path.dirname(__file__), *sys.path]))
    locale = subprocess.run([sys.executable, "-c", "import locale; print(locale."
                             "getpreferredencoding(False))"], env=env, capture_output=True,
                            text=True).stdout.strip()
    assert locale.lower().replace("-", "") not in ("utf8", "utf-8")  # the case at hand
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for name, n_rows in (("scores.csv", 6), ("per_task.csv", 2)):
        data = (tmp_path / name).read_bytes()
        assert "東京".encode() in data and "Genève".encode() in data
        rows = list(csv.DictReader(data.decode("utf-8").splitlines()))
        assert [row["task"] for row in rows] == ["Genève", "東京"] * (n_rows // 2)
