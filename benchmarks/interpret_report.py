"""Every picture and number in docs/labs/interpret.md, computed from one model.

    python benchmarks/interpret_report.py SRC --data ../shared/data/cifar10-10k \
        --out docs/labs/img [--weights FILE]

SRC is anything ``convlens interpret`` takes (a classify run folder, zoo:NAME,
module:factory). Writes ``OUT/interpret_*.png`` and prints Markdown: the model's test
accuracy, the sanity and faithfulness tables, and the checks of issue 11's "done means"
(Grad-CAM's deletion AUC below the random order's; its randomisation-test correlation
below 0.5). Deterministic for a given model: every random draw is seeded.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from convlens.cli.interpret import progress_bar
from convlens.interpret import plotting, render, tasks
from convlens.interpret.faithfulness import (
    DEFAULT_DELETION,
    RANDOM,
    SUBSTRATES,
    FaithfulnessResult,
    faithfulness,
    substrate_words,
)
from convlens.interpret.features import activations, kernels
from convlens.interpret.images import batch_pictures, read_test_batch
from convlens.interpret.maps import METHODS, image_maps, predict, resolve_options
from convlens.interpret.maximize import MaximizeOptions, maximize
from convlens.interpret.methods import MethodOptions, activations_and_gradients, upsample
from convlens.interpret.output import png_bytes, write_files
from convlens.interpret.sanity import cascading_randomisation
from convlens.interpret.sources import convolutions, find_layer

EXAMPLES = 4  # test images shown with every method's map


def first_of_distinct_classes(labels: np.ndarray, correct: np.ndarray, count: int) -> list[int]:
    """Test images to show: correctly classified ones of classes not shown yet, in order;
    then any others when there are too few."""
    shown: list[int] = []
    for i in np.flatnonzero(correct):
        if labels[i] not in labels[shown]:
            shown.append(int(i))
    rest = [int(i) for i in range(len(labels)) if i not in shown]
    return (shown + rest)[:count]


def control_orders(
    model: torch.nn.Module, x: torch.Tensor, targets: torch.Tensor, layer: str, seed: int
) -> dict[str, np.ndarray]:
    """Grad-CAM's pixel order reversed (least important first), and a random order with
    Grad-CAM's spatial structure: uniform noise at the layer's resolution, upsampled
    bilinearly like a Grad-CAM map. If Grad-CAM beats the second, its map says where the
    evidence is beyond what any blob-shaped deletion does."""
    gradcam = image_maps(model, x, targets, "gradcam", MethodOptions(layer=layer))
    activation, _ = activations_and_gradients(model, x[:1], targets[:1], find_layer(model, layer))
    noise = torch.rand(
        len(x), *activation.shape[-2:], generator=torch.Generator().manual_seed(seed)
    )
    smooth = upsample(noise, tuple(x.shape[-2:])).numpy()
    return {"gradcam, reversed": -gradcam, "random, Grad-CAM-shaped": smooth}


def deletion_controls(
    model: torch.nn.Module, x: torch.Tensor, options: MethodOptions, args: argparse.Namespace
) -> render.Rows:
    """Deletion areas of Grad-CAM, its controls and the random order for every deleted
    colour; further Grad-CAM layers (``--control-layers``) with deletion to the mean colour."""
    targets = predict(model, x).argmax(dim=1)
    controls = control_orders(model, x, targets, options.layer, args.seed)
    runs = {
        s: faithfulness(model, x, ["gradcam"], options, seed=args.seed, deletion=s, given=controls)
        for s in SUBSTRATES
    }
    orders = runs[SUBSTRATES[0]].orders
    rows = [[name, *(_area(run, name) for run in runs.values())] for name in orders]
    for layer in args.control_layers:
        other = faithfulness(model, x, ["gradcam"], replace(options, layer=layer), seed=args.seed)
        rows.append([f"gradcam at `{layer}`", _area(other, "gradcam"), *[""] * (len(runs) - 1)])
    columns = ["order", *(f"deletion AUC, to {substrate_words(s)}" for s in runs)]
    return render.Rows(columns, rows)


def _area(run: FaithfulnessResult, order: str) -> str:
    """Mean ± standard error of an order's deletion areas; its paired difference from the
    random order's."""
    areas = run.auc(run.deletion)[run.orders.index(order)]
    se = float(areas.std(ddof=1) / np.sqrt(len(areas))) if len(areas) > 1 else 0.0
    if order == RANDOM:
        return f"{areas.mean():.3f} ± {se:.3f}"
    paired = run.deletion_against_random(order)
    return f"{areas.mean():.3f} ± {se:.3f} ({paired.mean:+.3f} ± {paired.se:.3f} vs random)"


def log(message: str, start: float) -> None:
    print(f"<!-- {message} ({time.perf_counter() - start:.0f} s) -->", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--weights")
    parser.add_argument("--size")
    parser.add_argument("--sanity-images", type=int, default=16)
    parser.add_argument("--faithfulness-images", type=int, default=100)
    parser.add_argument("--maximize-steps", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--control-layers", nargs="*", default=[], help="further Grad-CAM layers to delete by"
    )
    args = parser.parse_args()
    start = time.perf_counter()
    files: dict[str, bytes] = {}

    source = tasks.open_source(args.source, args.weights, args.size)
    batch = read_test_batch(args.data)
    source = tasks.named_by(source, batch)
    pictures = batch_pictures(batch, range(len(batch.labels)), source.input_size)
    x = torch.stack([p.pixels for p in pictures])
    predicted = predict(source.model, x).argmax(dim=1).numpy()
    labels = batch.labels
    correct = predicted == labels
    options = resolve_options(source, MethodOptions(seed=args.seed))
    methods = list(METHODS)

    print(
        f"## Model\n\n`{args.source}`" + (f" with weights `{args.weights}`" if args.weights else "")
    )
    print(
        f"\nTest accuracy on the {len(labels):,} images of `{args.data}`: "
        f"**{correct.mean():.1%}** ({int(correct.sum())} correct). Grad-CAM layer "
        f"(the last convolution): `{options.layer}`.\n"
    )

    # 1. Every method on the first correctly classified test image of distinct classes.
    shown = first_of_distinct_classes(labels, correct, EXAMPLES)
    chosen = x[shown]
    targets = torch.from_numpy(predicted[shown])
    maps = {m: list(image_maps(source.model, chosen, targets, m, options)) for m in methods}
    names = [
        f"#{i} {batch.names[labels[i]]}"
        + ("" if correct[i] else f" (predicted {batch.names[predicted[i]]})")
        for i in shown
    ]
    grid = plotting.methods_grid(list(chosen), maps, names)
    files["interpret_methods.png"] = png_bytes(grid, dpi=80)
    log("attribution maps", start)

    # 2. Activations and filters.
    convs = convolutions(source.model, source.input_size)
    acts = activations(source.model, chosen[0], convs)
    files["interpret_activations.png"] = png_bytes(plotting.activations_figure(acts, 32))
    files["interpret_filters.png"] = png_bytes(
        plotting.filters_figure(kernels(source.model, convs[0]), convs[0])
    )

    # 3. Feature visualisation of each class.
    settings = MaximizeOptions(
        steps=args.maximize_steps,
        lr=0.02,
        jitter=2,
        l2=1.0,
        tv=0.5,
        blur_every=4,
        blur_sigma=0.5,
        seed=args.seed,
    )
    visuals = [
        maximize(source.model, source.input_size, target=k, options=settings)
        for k in range(source.num_classes)
    ]
    class_names = source.class_names or tuple(str(k) for k in range(source.num_classes))
    files["interpret_maximize.png"] = png_bytes(
        plotting.images_row([v.image for v in visuals], list(class_names)), dpi=80
    )
    log("activations, filters, class visualisations", start)

    # 4. Sanity: cascading randomisation.
    n = args.sanity_images
    with progress_bar(True) as progress:
        sanity = cascading_randomisation(source.model, x[:n], methods, options, args.seed, progress)
    title = f"cascading randomisation, {n} test images"
    files["interpret_sanity.png"] = png_bytes(plotting.sanity_figure(sanity, title))
    files["interpret_sanity_maps.png"] = png_bytes(
        plotting.sanity_maps_figure(sanity, x[0]), dpi=80
    )
    log("sanity", start)
    print(f"## Sanity (cascading randomisation, first {n} test images)\n")
    print(render.markdown_table(render.sanity_rows(sanity)))

    # 5. Faithfulness: deletion (to the mean colour, black, the blurred copy) and insertion.
    n = args.faithfulness_images
    runs = {}
    for substrate in SUBSTRATES:
        with progress_bar(True) as progress:
            runs[substrate] = faithfulness(
                source.model, x[:n], methods, options, seed=args.seed, progress=progress,
                deletion=substrate,
            )  # fmt: skip
    faith = runs["mean"]  # the first table: RISE's own deletion, beside insertion
    drawn = runs[DEFAULT_DELETION]  # the figure: what `interpret faithfulness` does by default
    title = (
        f"deletion (to {substrate_words(DEFAULT_DELETION)}) and insertion, {n} test images, "
        f"{drawn.step} px a step"
    )
    files["interpret_faithfulness.png"] = png_bytes(plotting.faithfulness_figure(drawn, title))
    log("faithfulness", start)
    print(f"## Faithfulness (first {n} test images, {faith.step} pixels a step)\n")
    print(render.markdown_table(render.faithfulness_rows(faith)))
    for substrate in SUBSTRATES[1:]:
        print(f"Deleting to {substrate_words(substrate)} instead:\n")
        other = render.faithfulness_rows(runs[substrate])
        print(render.markdown_table(render.Rows(other.columns[:3], [r[:3] for r in other.rows])))

    # 5b. Controls of Grad-CAM's deletion order: is the map informative, and is it the layer?
    print(f"## Deletion controls (Grad-CAM, first {n} test images)\n")
    print(render.markdown_table(deletion_controls(source.model, x[:n], options, args)))
    log("deletion controls", start)

    # 6. Issue 11's "done means".
    print("## Checks\n")
    for substrate, run in runs.items():
        paired = run.deletion_against_random("gradcam")
        areas = run.auc(run.deletion)
        print(
            f"- Grad-CAM deletion AUC (to {substrate}) "
            f"{areas[run.orders.index('gradcam')].mean():.3f} vs random order "
            f"{areas[run.orders.index('random')].mean():.3f}: paired difference "
            f"{paired.mean:+.3f} ± {paired.se:.3f} (standard error), lower on "
            f"{paired.lower_on} of {paired.images} images → "
            f"{'beats' if paired.lower else 'does NOT beat'} random."
        )
    rho = sanity.mean()[sanity.methods.index("gradcam")]
    at_layer = sanity.stages.index(options.layer)
    after_own = float(np.nanmax(rho[at_layer:]))
    rho_text = [render.number(float(v)) for v in (rho[0], rho[at_layer], rho[-1], after_own)]
    print(
        f"- Grad-CAM rank correlation after re-initialising the top layer: {rho_text[0]}; "
        f"once the cascade reaches its own layer `{options.layer}` (step {at_layer + 1}): "
        f"{rho_text[1]}; after every layer: {rho_text[2]}; highest from its own layer on: "
        f"{rho_text[3]} → {'below' if after_own < 0.5 else 'NOT below'} 0.5."
    )
    written = write_files(Path(args.out), files)
    log("wrote " + ", ".join(p.name for p in written), start)


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
