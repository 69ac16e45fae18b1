"""Our boosted trees against scikit-learn's HistGradientBoostingClassifier on the same matrix.

Reads train.csv, valid.csv and test.csv as `trainer export` writes them (session, fraud, weight,
then the raw features), fits HistGradientBoostingClassifier on the training rows with their
weights over a small grid, stops each fit at the iteration with the best session-level average
precision on the validation window (validation only: the test window is never looked at to
choose), and prints validation and test AP beside ours. Session level as the trainer measures it:
a session's score is its highest event score, ties counted pessimistically.

Used by scripts/bench-hgb; Python is a bench tool here, never part of the product.
"""

import argparse
import itertools
import json
import sys
import time

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier


def load(path):
    df = pd.read_csv(path)
    session = df["session"].to_numpy(dtype=np.uint64)
    y = df["fraud"].to_numpy(dtype=np.int8)
    w = df["weight"].to_numpy(dtype=np.float64)
    x = df.drop(columns=["session", "fraud", "weight"]).to_numpy(dtype=np.float32)
    return session, y, w, x


def session_ap(session, y, score):
    """Average precision over sessions (max score, any fraud), legitimate first among ties."""
    df = pd.DataFrame({"s": session, "y": y, "p": score}).groupby("s").agg(y=("y", "max"), p=("p", "max"))
    df = df.sort_values(["p", "y"], ascending=[False, True])
    hits = df["y"].to_numpy()
    pos = hits.sum()
    if pos == 0:
        return 0.0
    tp = np.cumsum(hits)
    ranks = np.arange(1, len(hits) + 1)
    return float((tp[hits == 1] / ranks[hits == 1]).sum() / pos)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("matrix", help="directory with train.csv, valid.csv, test.csv")
    ap.add_argument("--ours", required=True, help="metrics.json of our boosted model on the same lake")
    ap.add_argument("--max-iter", type=int, default=300)
    ap.add_argument("--json-out", help="write the comparison here as JSON")
    a = ap.parse_args()

    t0 = time.time()
    _, ytr, wtr, xtr = load(f"{a.matrix}/train.csv")
    sva, yva, _, xva = load(f"{a.matrix}/valid.csv")
    ste, yte, _, xte = load(f"{a.matrix}/test.csv")
    print(f"matrix: {len(ytr)} train rows ({ytr.sum()} fraudulent), {len(yva)} validation, {len(yte)} test "
          f"({time.time() - t0:.0f} s to read)", file=sys.stderr)
    # Classes balanced as our trees balance them: the square root of the weighted ratio.
    pos_w, neg_w = wtr[ytr == 1].sum(), wtr[ytr == 0].sum()
    sample_w = np.where(ytr == 1, wtr * np.sqrt(neg_w / pos_w), wtr)

    best = None
    grid = list(itertools.product([0.05, 0.1], [15, 31, 63], [20, 200]))
    for i, (lr, leaves, min_leaf) in enumerate(grid):
        t = time.time()
        m = HistGradientBoostingClassifier(
            learning_rate=lr, max_iter=a.max_iter, max_leaf_nodes=leaves, min_samples_leaf=min_leaf,
            l2_regularization=1.0, early_stopping=False, random_state=0)
        m.fit(xtr, ytr, sample_weight=sample_w)
        # Early stopping on the validation window: the iteration with the best session AP.
        scores = [(k, session_ap(sva, yva, p[:, 1])) for k, p in enumerate(m.staged_predict_proba(xva), 1)
                  if k % 10 == 0 or k == m.n_iter_]
        k, valid_ap = max(scores, key=lambda s: s[1])
        print(f"[{i + 1}/{len(grid)}] lr {lr} leaves {leaves} min_leaf {min_leaf}: valid AP {valid_ap:.4f} "
              f"at {k} trees ({time.time() - t:.0f} s)", file=sys.stderr)
        if best is None or valid_ap > best["valid_ap"]:
            test_p = list(itertools.islice(m.staged_predict_proba(xte), k - 1, k))[0][:, 1]
            best = {"learning_rate": lr, "max_leaf_nodes": leaves, "min_samples_leaf": min_leaf, "trees": k,
                    "valid_ap": valid_ap, "test_ap": session_ap(ste, yte, test_p)}

    ours = json.load(open(a.ours))
    mine = next(s for s in ours["model_selection"] if s["kind"] == "boosted_trees")
    out = {"sklearn_hgb": best, "ours": {"valid_ap": mine["valid_ap"], "test_ap": mine["test_ap"]},
           "gap_valid_ap": best["valid_ap"] - mine["valid_ap"]}
    print(f"scikit-learn HGB (best of {len(grid)} on validation): valid AP {best['valid_ap']:.4f}, "
          f"test AP {best['test_ap']:.4f} ({best})")
    print(f"ours:                                 valid AP {mine['valid_ap']:.4f}, test AP {mine['test_ap']:.4f}")
    verdict = "within 0.01" if out["gap_valid_ap"] <= 0.01 else "behind by more than 0.01: improve the trees"
    print(f"gap on validation: {out['gap_valid_ap']:+.4f} ({verdict})")
    if a.json_out:
        json.dump(out, open(a.json_out, "w"), indent=2)


if __name__ == "__main__":
    main()
