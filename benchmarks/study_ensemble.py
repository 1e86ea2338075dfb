"""Study: ensembles of two differently trained models, NIF vs SIF vs RRF, on the synthetic city (issue 13, table e).

Each model retrieves its own top 20 from the test database and the ranked lists are
merged (``vgloc eval --checkpoint A --checkpoint B --ensemble nif|sif|rrf``,
``docs/ensembles.md``): NIF by descriptor distance, SIF the candidates both share first
(in the lead model's order; the lead is the member with the better val R@1, "the
stronger model"), RRF by reciprocal rank (k=60). The members are runs of the other
studies, reused from the run cache of ``_study.py`` (trained if missing): the baseline
paired with GRL (train night queries), with darker training images (0.2), with Adam +
cosine and with SGD + cosine. Every member and fusion on the test district, day and night.

    nice python benchmarks/study_ensemble.py --out benchmarks/results/study_ensemble.json

Prints a Markdown table (command, machine, recipe) and writes JSON.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import _study as st
import study_brightness
import study_grl
import study_optim
from _machine import command_line, write_results  # benchmarks/ is on sys.path when a script runs

FUSIONS = ("nif", "sif", "rrf")


def partners(sgd_lr: float) -> list[st.RunSpec]:
    """The runs paired with the baseline, one ensemble each."""
    optim = {s.label: s for s in study_optim.specs(sgd_lr)}
    grl = study_grl.specs(["train night queries"], [])[1]
    bright = study_brightness.specs([0.2], 0.5)[1]
    return [
        st.RunSpec("GRL (train night)", grl.settings),
        st.RunSpec("brightness 0.2", bright.settings),
        st.RunSpec("adam cosine", optim["adam cosine"].settings),
        st.RunSpec("sgd cosine", optim["sgd cosine"].settings),
    ]


def test_index(root: Path, run_dir: Path, work: Path) -> Path:
    """An exact index of the test database for a run's best model, built once (each fusion reuses it)."""
    out = work / "ensembles" / "indexes" / run_dir.name
    if not (out / "index.json").is_file() and not out.is_dir():
        import torch

        from vgloc.api import ExtractionOptions
        from vgloc.indexing import build_index

        torch.set_num_threads(1)
        h, w = (int(v) for v in st.IMAGE_SIZE.split(","))
        options = ExtractionOptions(
            image_size=(h, w), batch_size=32, precision="fp32", num_workers=0, progress=False
        )
        build_index(
            root / "images" / "test" / "database",
            st.MODEL,
            out,
            checkpoint=run_dir / "best_model.pt",
            factory="Flat",
            options=options,
            validate=False,
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    st.add_common_args(ap)
    ap.add_argument("--sgd-lr", type=float, default=1e-2, help="as study_optim.py (same runs)")
    args = ap.parse_args()
    city, root = st.city_root(args.size, args.seed)
    work = args.work_dir or st.default_work_dir()
    base = st.base_settings(st.budget_of(args), args.seed)
    specs = [st.RunSpec("baseline", []), *partners(args.sgd_lr)]
    runs = st.train_runs(
        specs, city=city, root=root, base=base, work=work, jobs=args.jobs, cached_only=args.cached_only
    )
    if "baseline" not in runs:
        raise SystemExit("the baseline run is not in the cache; run without --cached-only")
    cache = work / "ensembles" / "study_eval.json"
    a_dir, a_rec = runs["baseline"]
    rows: list[dict[str, Any]] = []
    for spec in specs[1:]:
        if spec.label not in runs:
            continue
        b_dir, b_rec = runs[spec.label]
        members = [("baseline", a_dir, a_rec), (spec.label, b_dir, b_rec)]
        lead = max(range(2), key=lambda i: st.best_val(members[i][2])[1])
        pair = f"baseline + {spec.label}"
        for name, d, rec in members:
            rows.append({**st.run_row(name, d, rec, root), "pair": pair})
        models = [a_dir / "best_model.pt", b_dir / "best_model.pt"]
        indexes = [str(test_index(root, d, work)) for d in (a_dir, b_dir)]
        for fusion in FUSIONS:
            extra = {"lead": lead} if fusion == "sif" else {}
            res = st.evaluate_model(root, models, cache=cache, ensemble=fusion, indexes=indexes, **extra)
            label = fusion.upper() + (f" (lead: {members[lead][0]})" if fusion == "sif" else "")
            rows.append({"label": label, "pair": pair, "test": res["test"]})
            print(f"[study] {pair} {label}: {st.recall_cells(rows[-1])}", flush=True)

    machine = st.print_header(args, "Ensembles: NIF vs SIF vs RRF")
    print("Each member retrieves its top 20; SIF's lead is the member with the better val day R@1.\n")
    print(f"| pair | model / fusion | {st.RECALL_HEADER} |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['pair']} | {r['label']} | {st.recall_cells(r)} |")
    write_results(args.out, command=command_line(), machine=machine, rows=rows)


if __name__ == "__main__":
    main()
