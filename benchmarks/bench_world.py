"""World-scale accuracy on the synthetic world: 1-NN vs kNN density (sigma sweep) at 1/25/200/750/2500 km.

Describes the test split once, then runs every predictor on the same top-100
neighbours, and checks the report against a plain haversine recomputation from
``predictions.csv``.

    python benchmarks/bench_world.py --size tiny --model tiny+gem --image-size 72,96
    python benchmarks/bench_world.py --model tiny+gem+fc64 --checkpoint RUN/best_model.pt   # a trained model
    python benchmarks/bench_world.py --geocell-epochs 4 --geocell-steps 50   # train geocell, then compare
    python benchmarks/bench_world.py --regional --geocell-epochs 4 --geocell-t-img "[600, 150, 30]"

``--regional`` puts a second city 130-440 km from each of the six (Brussels, Philadelphia,
Canberra, Mombasa, Osaka, Rio de Janeiro), built in its region's style, so that the
25 / 200 / 750 km thresholds separate "the right city" from "the right region".
With a trained geocell run every partition is scored alone (coarse ... fine) and
combined (hierarchical).
"""

from __future__ import annotations

import argparse
import csv
import math
import tempfile
from pathlib import Path

import numpy as np

import vgloc
from vgloc.config import resolve_config
from vgloc.data import load_split
from vgloc.data.synthetic.world import WORLD_PLACES, WORLD_STYLES, generate_world
from vgloc.demo import cache_dir
from vgloc.describers import ExtractionOptions
from vgloc.evaluation.metrics import KM_THRESHOLDS, accuracy_km_of
from vgloc.geo import haversine_m
from vgloc.predict import WORLD_KDE, estimate_positions
from vgloc.predict.cells import GeoCellClassifier
from vgloc.training import train

#: A second city near each default place (130-440 km away), in its region's style.
NEIGHBOURS = {
    "paris": ("brussels", 50.8503, 4.3517),
    "new_york": ("philadelphia", 39.9526, -75.1652),
    "sydney": ("canberra", -35.2809, 149.1300),
    "nairobi": ("mombasa", -4.0435, 39.6682),
    "tokyo": ("osaka", 34.6937, 135.5023),
    "sao_paulo": ("rio", -22.9068, -43.1729),
}


def _haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371.0088 * math.asin(math.sqrt(a))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="tiny")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default="tiny+gem")
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--image-size", default="72,96", help="H,W of the rendered views")
    ap.add_argument("--sigmas-km", default="1,4,16,64,256,1024")
    ap.add_argument(
        "--geocell-epochs",
        type=int,
        default=0,
        help="first train `geocell` (tiny+gem+fc64, 48x64, this many epochs of --geocell-steps) on the train "
        "split, then compare its classifier with retrieval on its own descriptor",
    )
    ap.add_argument("--geocell-steps", type=int, default=50)
    ap.add_argument("--geocell-t-img", default="[200, 20]", help="geocell.t_img (coarse to fine)")
    ap.add_argument("--geocell-cells", default="rect", choices=["rect", "h3"], help="geocell.cells")
    ap.add_argument("--regional", action="store_true", help="12 cities: a neighbour in each region")
    args = ap.parse_args()
    hw = tuple(int(v) for v in args.image_size.split(","))
    places = list(WORLD_PLACES)
    styles = dict(WORLD_STYLES)
    if args.regional:
        for name, *_ in WORLD_PLACES:
            near = NEIGHBOURS[name]
            places.append(near)
            styles[near[0]] = WORLD_STYLES[name]
    root = generate_world(
        cache_dir()
        / "synthetic"
        / f"world{'-regional' if args.regional else ''}-{args.size}-seed{args.seed}-{hw[0]}x{hw[1]}",
        args.size,
        args.seed,
        places=places,
        styles=styles,
        image_size=(hw[0], hw[1]),
        progress=False,
        workers=1,
    )
    classifier = None
    options = ExtractionOptions(batch_size=32, progress=False)
    if args.geocell_epochs:
        run = Path(tempfile.mkdtemp(prefix="bench_world_geocell_"))
        cfg = resolve_config(
            "geocell",
            overrides=[
                f"data.root={root}",
                "model.spec=tiny+gem+fc64",
                "data.image_size=48,64",
                "data.cache_images=true",
                "data.validate_images=false",
                f"schedule.epochs={args.geocell_epochs}",
                "optim.lr=1e-3",
                f"geocell.t_img={args.geocell_t_img}",
                "geocell.min_images=3",
                "geocell.t_area_km2=1e-5",
                f"geocell.cells={args.geocell_cells}",
                "geocell.h3_max_resolution=13",
                f"geocell.iterations_per_epoch={args.geocell_steps}",
                "runtime.device=cpu",
                "runtime.num_workers=0",
                "runtime.progress=false",
                "runtime.tensorboard=false",
            ],
        )
        train(cfg, run_dir=run)
        classifier = GeoCellClassifier.load(run)
        args.model, args.checkpoint = "tiny+gem+fc64", run / "best_model.pt"
        options = ExtractionOptions(image_size=(48, 64), batch_size=32, progress=False)
        print(f"geocell run {run}: partitions {[p.num_cells for p in classifier.partitions]} cells")
    split = load_split(root, "test", validate=False, progress=False)
    db, queries = split.database, split.queries["queries"]
    with tempfile.TemporaryDirectory() as out:
        result = vgloc.evaluate(
            root,
            "test",
            args.model,
            checkpoint=args.checkpoint,
            domains=["queries"],
            method="kde",  # world-wide data: WORLD_KDE, top-100 retrieved
            options=options,
            out_dir=out,
            report=False,
        )
        rows = list(csv.DictReader((Path(out) / "predictions.csv").open()))
    d = result.domains["queries"]
    km = [
        _haversine_km(*(float(r[c]) for c in ("pred_lat", "pred_lon", "true_lat", "true_lon"))) for r in rows
    ]
    check = {t: 100.0 * float(np.mean(np.array(km) <= t)) for t in KM_THRESHOLDS}
    reported = {t: d.metrics[f"acc@{t:g}km"] for t in KM_THRESHOLDS}
    same = all(abs(check[t] - reported[t]) < 1e-9 for t in KM_THRESHOLDS)
    print(f"{args.model} on {root.name}: {len(db)} database images, {len(queries)} queries")
    print(
        f"independent haversine check of predictions.csv vs the report (kde 4 km): {'match' if same else check}"
    )
    head = "| predictor | " + " | ".join(f"{t:g} km" for t in KM_THRESHOLDS) + " | median km |"
    print(head + "\n|---|" + "---:|" * (len(KM_THRESHOLDS) + 1))
    configs: list[tuple[str, str, dict[str, float]]] = [("1-NN (nearest)", "nearest", {})]
    for k in (10, 30):  # fewer neighbours: the density counts fewer wrong places
        configs.append((f"kde k={k} m=10 sigma=4 km", "kde", {"k": k, "m": WORLD_KDE.m, "sigma_km": 4.0}))
    for s in args.sigmas_km.split(","):
        configs.append(
            (
                f"kde k=100 m=10 sigma={s} km",
                "kde",
                {"k": WORLD_KDE.k, "m": WORLD_KDE.m, "sigma_km": float(s)},
            )
        )
    if classifier is not None:
        logits = classifier.logits(list(queries.paths), options)
        n = len(classifier.partitions)
        runs = [(i, False) for i in range(n)] + [(n - 1, True)]
        for (part, hier), position in ((r, p) for r in runs for p in ("mean", "centre")):
            pred = classifier.predict_from_logits(
                logits, k=1, position=position, hierarchical=hier, partition=part
            )
            err = haversine_m(
                pred.latlon[:, 0], pred.latlon[:, 1], queries.latlon[:, 0], queries.latlon[:, 1]
            )
            acc = accuracy_km_of(err)
            cells = classifier.partitions[part]
            label = (
                f"geocell {'hierarchical' if hier else cells.name} ({cells.num_cells} cells), cell {position}"
            )
            print(
                f"| {label} | "
                + " | ".join(f"{acc[t]:.1f}" for t in KM_THRESHOLDS)
                + f" | {float(np.median(err)) / 1000:.1f} |"
            )
    for label, name, params in configs:
        est = estimate_positions(d.similarities, d.predictions, db, name, **params)
        err = est.errors_m(queries)
        acc = accuracy_km_of(err)
        med = float(np.nanmedian(err)) / 1000.0
        print(f"| {label} | " + " | ".join(f"{acc[t]:.1f}" for t in KM_THRESHOLDS) + f" | {med:.1f} |")


if __name__ == "__main__":
    main()
