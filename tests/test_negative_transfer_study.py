"""benchmarks/negative_transfer.py: pair rules, the summary by hand, a --quick run."""

import importlib.util

import numpy as np
import pytest
from _benchmarks import benchmark_module

nan = np.nan


@pytest.fixture(scope="module")
def study():
    with benchmark_module("negative_transfer") as module:
        yield module


def _labels(measured):
    """A target matrix with a label (1.0) where ``measured`` is True, NaN elsewhere."""
    return np.where(np.asarray(measured, dtype=bool), 1.0, nan)


# Five tasks on 10 rows. Overlaps (rows labelled on both): {0, 1}: 4, {0, 2}: 3, {1, 2}: 3,
# {0, 3}: 2, {2, 3}: 2, {1, 3}: 1; task 4 shares no row with any task.
# Labels per task: 0: 6, 1: 5, 2: 5, 3: 3, 4: 2.
FAKE = _labels([
    # 0  1  2  3  4
    [1, 1, 1, 0, 0],
    [1, 1, 1, 0, 0],
    [1, 1, 0, 1, 0],
    [1, 1, 0, 0, 0],
    [1, 0, 0, 0, 0],
    [0, 1, 1, 0, 0],
    [0, 0, 1, 1, 0],
    [1, 0, 1, 1, 0],
    [0, 0, 0, 0, 1],
    [0, 0, 0, 0, 1],
])


def test_overlap_matrix(study):
    overlap = study.overlap_matrix(FAKE)
    expected = np.array([[6, 4, 3, 2, 0],
                         [4, 5, 3, 1, 0],
                         [3, 3, 5, 2, 0],
                         [2, 1, 2, 3, 0],
                         [0, 0, 0, 0, 2]])
    np.testing.assert_array_equal(overlap, expected)


def test_related_pairs_have_the_largest_overlap(study):
    # {0, 1}: 4, then {0, 2} and {1, 2}: 3 each (tie broken by column order: (0, 2) first),
    # then {0, 3} and {2, 3}: 2; the focus is the task with fewer labels
    assert study.related_pairs(FAKE, 1) == [(1, 0)]
    assert study.related_pairs(FAKE, 4) == [(1, 0), (2, 0), (1, 2), (3, 0)]
    # deterministic, and every related pair overlaps at least as much as any other pair
    assert study.related_pairs(FAKE, 4) == study.related_pairs(FAKE.copy(), 4)
    overlap = study.overlap_matrix(FAKE)
    chosen = study.related_pairs(FAKE, 3)
    least = min(overlap[f, a] for f, a in chosen)
    others = [overlap[i, j] for i in range(5) for j in range(i + 1, 5)
              if {i, j} not in [set(p) for p in chosen]]
    assert least >= max(others)
    # pairs sharing no row are never related: at most the 6 overlapping pairs
    assert len(study.related_pairs(FAKE, 10)) == 6
    assert all(4 not in pair for pair in study.related_pairs(FAKE, 10))


def test_random_pairs_reproducible_by_seed(study):
    exclude = [(1, 0), (2, 0)]
    pairs = study.random_pairs(5, 6, random_state=3, exclude=exclude)
    assert pairs == study.random_pairs(5, 6, random_state=3, exclude=exclude)
    assert pairs != study.random_pairs(5, 6, random_state=4, exclude=exclude)
    assert len(set(pairs)) == 6
    assert all(f != a and {f, a} not in ({0, 1}, {0, 2}) for f, a in pairs)
    # every remaining ordered pair is drawn when asked for more than there are
    everything = study.random_pairs(5, 100, random_state=0, exclude=exclude)
    assert len(everything) == 5 * 4 - 2 * len(exclude)


def test_split_focus_holds_out_focus_molecules(study):
    Y = np.column_stack([np.r_[np.arange(10.0), np.full(5, nan)], np.arange(15.0)])
    train, test = study.split_focus(Y, seed=0)
    assert test.shape == (2,) and np.isfinite(Y[test, 0]).all()  # 20 % of the 10 focus rows
    np.testing.assert_array_equal(np.sort(np.r_[train, test]), np.arange(15))
    train_again, test_again = study.split_focus(Y, seed=0)
    np.testing.assert_array_equal(test, test_again)
    assert any(not np.array_equal(test, study.split_focus(Y, seed=s)[1]) for s in range(1, 5))


def _hand_results():
    """Two groups, two pairs (related), one pair (random), two seeds, configs A and B."""
    import pandas as pd

    rows = []

    def add(group, focus, seed, ref, a, b):
        for config, r2 in (("single_task", ref), ("A", a), ("B", b)):
            rows.append(dict(group=group, focus=focus, auxiliary="aux", seed=seed,
                             config=config, r2=r2, error=None))

    #           group      pair seed  ref   A     B
    add("related", "t1", 0, 0.50, 0.60, 0.495)  # gains A +0.10, B -0.005 (within 0.01)
    add("related", "t1", 1, 0.40, 0.38, 0.30)   #       A -0.02, B -0.10
    add("related", "t2", 0, 0.70, 0.75, 0.72)   #       A +0.05, B +0.02
    add("related", "t2", 1, 0.60, 0.67, 0.64)   #       A +0.07, B +0.04
    add("random", "t3", 0, 0.50, 0.40, 0.52)    #       A -0.10, B +0.02
    add("random", "t3", 1, 0.30, nan, 0.31)     #       A failed, B +0.01
    return pd.DataFrame(rows)


def test_summary_against_hand_computation(study):
    results = _hand_results()
    gains = study.gains(results)
    assert set(gains["config"]) == {"A", "B"} and gains.shape[0] == 12
    summary = study.summarize(results, tolerance=0.01).set_index(["config", "group"])
    assert list(summary.columns) == ["n_cases", "r2", "gain", "gain_se", "n_negative",
                                     "share_negative"]

    row = summary.loc[("A", "related")]
    assert row["n_cases"] == 4
    np.testing.assert_allclose(row["gain"], 0.05)  # (0.10 - 0.02 + 0.05 + 0.07) / 4
    # sd with ddof=1 of the deviations 0.05, -0.07, 0, 0.02, over sqrt(4)
    np.testing.assert_allclose(row["gain_se"], np.sqrt((0.05**2 + 0.07**2 + 0.02**2) / 3) / 2)
    np.testing.assert_allclose(row["r2"], (0.60 + 0.38 + 0.75 + 0.67) / 4)
    assert row["n_negative"] == 1 and row["share_negative"] == 0.25

    row = summary.loc[("B", "related")]
    np.testing.assert_allclose(row["gain"], (-0.005 - 0.10 + 0.02 + 0.04) / 4)
    assert row["n_negative"] == 1  # -0.005 is within the tolerance, -0.10 is not

    row = summary.loc[("A", "random")]  # the failed fit is left out of the paired cases
    assert row["n_cases"] == 1 and row["n_negative"] == 1 and row["share_negative"] == 1.0
    np.testing.assert_allclose(row["gain"], -0.10)
    assert np.isnan(row["gain_se"])  # one case: no standard error
    row = summary.loc[("B", "random")]
    assert row["n_cases"] == 2 and row["n_negative"] == 0
    np.testing.assert_allclose(row["gain"], 0.015)
    np.testing.assert_allclose(row["gain_se"], 0.005)  # sd of (0.02, 0.01) / sqrt(2)

    ref = summary.loc[("single_task", "related")]
    np.testing.assert_allclose(ref["r2"], (0.50 + 0.40 + 0.70 + 0.60) / 4)
    assert np.isnan(ref["gain"]) and np.isnan(ref["share_negative"])

    # a larger tolerance counts fewer cases: B's -0.10 stays, A's -0.02 goes
    loose = study.summarize(results, tolerance=0.05).set_index(["config", "group"])
    assert loose.loc[("A", "related"), "n_negative"] == 0
    assert loose.loc[("B", "related"), "n_negative"] == 1


def test_findings_sentence_from_the_numbers(study):
    summary = study.summarize(_hand_results(), tolerance=0.01)
    related, random = study.findings(summary, tolerance=0.01)
    # related: both have 1 of 4; A first (larger mean gain)
    assert related.startswith("Related pairs: no strategy avoids negative transfer")
    assert "the fewest cases: A 1 of 4 (25%) and B 1 of 4 (25%)" in related
    assert "largest mean gain is A's (+0.050 ± 0.025)" in related
    # random: B never below single_task by more than 0.01, A in its single case
    assert random.startswith("Random pairs: B avoids negative transfer in every case")
    assert "the others fall below it in A 1 of 1 (100%)" in random
    assert "largest mean gain is B's (+0.015 ± 0.005)" in random


def test_unknown_parameters_skip_a_configuration(study):
    pytest.importorskip("torch")
    runnable, skipped = study.available_configs(
        {"single_task": dict(strategy="single_task"),
         "future": dict(strategy="rmtl", no_such_parameter=1)})
    assert list(runnable) == ["single_task"]
    assert "no_such_parameter" in skipped["future"]


def test_quick_run(study, tmp_path, monkeypatch):
    pytest.importorskip("torch")
    if importlib.util.find_spec("MoleculeACE") is None or importlib.util.find_spec("rdkit") is None:
        pytest.skip("needs MoleculeACE and skmtl[chem]")
    readme, page = tmp_path / "README.md", tmp_path / "transfer.rst"
    readme.write_text("head\n<!-- negative-transfer:start -->\nold\n"
                      "<!-- negative-transfer:end -->\ntail\n")
    page.write_text("head\n\n.. negative-transfer:start\n\nold\n\n.. negative-transfer:end\n")
    monkeypatch.setattr(study, "README", str(readme))
    monkeypatch.setattr(study, "DOCS_PAGE", str(page))
    pytest.importorskip("matplotlib")
    configs = ["multi_task", "lbtw"]
    csv, png = tmp_path / "cases.csv", tmp_path / "gains.png"
    results, summary, markdown = study.main(
        ["--quick", "--n-pairs", "1", "--seeds", "1", "--max-epochs", "2", "--configs",
         *configs, "--write", "--csv", str(csv), "--plot", str(png)])
    # 2 pairs (1 related, 1 random) x 1 seed x 3 configurations (single_task added)
    assert results.shape[0] == 2 * 1 * 3
    assert list(results["config"].unique()) == ["single_task", *configs]
    assert list(results["group"].unique()) == ["related", "random"]
    assert results["error"].isna().all() and np.isfinite(results["r2"]).all()
    assert (results["r2"] <= 1).all()
    related = results[results["group"] == "related"].iloc[0]
    assert (related["focus"], related["auxiliary"]) == ("CHEMBL2835_Ki", "CHEMBL2971_Ki")
    assert related["overlap"] == 544
    assert summary.shape == (3 * 2, 8)
    assert list(summary.columns) == ["config", "group", "n_cases", "r2", "gain", "gain_se",
                                     "n_negative", "share_negative"]
    assert (summary.loc[summary["config"] != "single_task", "n_cases"] == 1).all()

    table = [line for line in markdown.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    assert header == ["configuration"] + [f"{g}: {c}" for g in ("related", "random")
                                          for c in ("R^2", "gain ± SE", "negative transfer")]
    assert [line.strip("|").split("|")[0].strip() for line in table[2:]] == [
        "single_task", *configs]
    assert "- Related pairs:" in markdown and "- Random pairs:" in markdown
    # written between the markers, in both styles
    text = readme.read_text()
    assert text.startswith("head\n<!-- negative-transfer:start -->\n\nGenerated by")
    assert "| configuration |" in text and text.endswith("<!-- negative-transfer:end -->\ntail\n")
    assert ".. list-table::" in page.read_text()
    # the per-case scores and the plot
    assert len(csv.read_text().splitlines()) == 1 + results.shape[0]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
