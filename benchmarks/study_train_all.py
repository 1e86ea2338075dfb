"""Train every run the study tables need, most informative first, ``--jobs`` at a time (issue 13).

The study scripts (``study_optim.py``, ``study_brightness.py``, ``study_grl.py``, and
``study_multiscale.py`` / ``study_soup.py`` / ``study_ensemble.py``, which reuse those
runs) each train what they miss. On a loaded machine it is better to fill the run cache
in one queue, in an order that gives every table its first rows early, and then print
the tables with ``--cached-only``:

    nice python benchmarks/study_train_all.py --jobs 2
    nice python benchmarks/study_optim.py --cached-only --out benchmarks/results/study_optim.json

Order: the baseline, GRL on the train night queries, Adam with cosine annealing,
brightness 0.2, SGD cosine, GRL on the val night queries, AdamW and ASGD cosine, the
other brightness factors, the plateau runs, then the other losses (``--losses``).
"""

from __future__ import annotations

import argparse

import _study as st
import study_brightness
import study_grl
import study_losses
import study_optim


def queue(sgd_lr: float, losses: bool) -> list[st.RunSpec]:
    """Every study's runs, deduplicated by settings, in priority order."""
    optim = {s.label: s for s in study_optim.specs(sgd_lr)}
    bright = {s.label: s for s in study_brightness.specs(list(study_brightness.FACTORS), 0.5)}
    grl = {s.label: s for s in study_grl.specs(list(study_grl.TARGETS), [])}
    order = [
        optim["adam constant"],
        grl["GRL, target: train night queries"],
        optim["adam cosine"],
        bright["0.2"],
        optim["sgd cosine"],
        grl["GRL, target: val night queries"],
        optim["adamw cosine"],
        optim["asgd cosine"],
        bright["0.4"],
        bright["0.1"],
        optim["adam plateau"],
        optim["sgd plateau"],
        optim["adamw plateau"],
        optim["asgd plateau"],
        bright["0.3"],
    ]
    return order + (study_losses.specs()[1:] if losses else [])  # [0] is CosFace, the baseline


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    st.add_common_args(ap)
    ap.add_argument("--sgd-lr", type=float, default=1e-2, help="as study_optim.py")
    ap.add_argument("--losses", action="store_true", help="also ArcFace and SphereFace (the losses table)")
    args = ap.parse_args()
    city, root = st.city_root(args.size, args.seed)
    work = args.work_dir or st.default_work_dir()
    base = st.base_settings(st.budget_of(args), args.seed)
    specs = queue(args.sgd_lr, args.losses)
    assert len({s.label for s in specs}) == len(specs)
    st.train_runs(specs, city=city, root=root, base=base, work=work, jobs=args.jobs)


if __name__ == "__main__":
    main()
