"""The ``minicnn`` command (also ``python -m minicnn``).

    minicnn gradcheck                 check every built-in op's gradient, print a table
    minicnn bench [--only SECTION]    time minicnn beside PyTorch CPU (when installed)
    minicnn train NAME                train a shipped model by its recipe (fashion_net, cifar_net,
                                      segnet, segnet_transposed, unet)
    minicnn assignment make OUT --parts conv2d,saliency [--notebook] | check OUT   homework folders
    minicnn weights list|fetch|import manage pretrained weights
    minicnn data list | fetch NAME    the datasets: where they are, or download one
    minicnn export WEIGHTS --out F.pth|.safetensors|.onnx   take a model to PyTorch / ONNX engines
    minicnn export --torch-module NAME    the PyTorch module source of an architecture
    minicnn demo [--quick] [--only a,b]  every technique on the offline defaults -> ./minicnn-gallery
    minicnn explore [--model NAME] [--port N] [--images DIR]   a network live in the browser
"""
import argparse
import os
import sys
import time
import traceback

__all__ = ["main"]

MAX_EXPORT_SIDE = 1024    # ONNX export input side: VGG-16 at 1024x1024 already needs ~1 GB


def _cmd_gradcheck(args):
    from .bench.opcheck import run_all, format_table
    rows = run_all(seed=args.seed, names=args.only.split(",") if args.only else None)
    print(format_table(rows))
    return 0 if all(r.ok for r in rows) else 1


def _cmd_bench(args):
    from . import bench
    bench.run(sections=args.only.split(",") if args.only else None)
    return 0


def _recorded_command(args):
    """The command line as the manifest records it: options naming files or folders keep
    only the last part of the path (a manifest travels; the machine's folders do not)."""
    words = ["minicnn", "train", args.name]
    if args.epochs is not None:
        words += ["--epochs", str(args.epochs)]
    if args.seed:
        words += ["--seed", str(args.seed)]
    if getattr(args, "scratch", False):
        words.append("--scratch")
    if getattr(args, "lr", None) is not None:
        words += ["--lr", f"{args.lr:g}"]
    if getattr(args, "init", None):
        words += ["--init", os.path.basename(os.path.normpath(args.init))]
    if getattr(args, "resume", False):
        words.append("--resume")
    if args.data:
        words += ["--data", os.path.basename(os.path.normpath(args.data))]
    return " ".join(words)


def _resume_command(args):
    """The command to type to continue an interrupted run (full paths: it runs here)."""
    words = ["minicnn", "train", args.name]
    for option in ("epochs", "seed", "lr", "init", "data", "out"):
        value = getattr(args, option, None)
        if value is not None and not (option == "seed" and value == 0):
            words += [f"--{option}", str(value)]
    words += ["--scratch"] * bool(args.scratch) + ["--replace-shipped"] * bool(args.replace_shipped)
    return " ".join(words + ["--resume"])


def _train_outcome(args, run):
    """Run a training call; a stop by Ctrl-C or a kept better file becomes one clear line."""
    from .training.loop import TrainingInterrupted
    from .training.recipes import NotReplaced
    try:
        return run()
    except TrainingInterrupted as stop:
        print(f"minicnn train: {stop}; continue with: {_resume_command(args)}", file=sys.stderr)
        return 130
    except NotReplaced as kept:
        print(f"minicnn train: {kept}", file=sys.stderr)
        return 1


def _where_pretrained_loads(name):
    from .models import pretrained
    active, _ = pretrained.active_weights(name)
    return f"{name}(pretrained=True) loads {active or 'nothing yet'} (`minicnn weights list`)"


def _cmd_train(args):
    from .training.recipes import RECIPES, SEG_RECIPES, train_recipe, train_segmentation_recipe
    if args.name in SEG_RECIPES:
        if args.lr is not None or args.init:
            print(f"minicnn train: --lr and --init are for {', '.join(RECIPES)}, "
                  f"not {args.name}", file=sys.stderr)
            return 2

        def run():
            path, history = train_segmentation_recipe(
                args.name, out_dir=args.out, data_root=args.data, epochs=args.epochs,
                seed=args.seed, resume=args.resume, pretrained_encoder=not args.scratch,
                out_name=f"{args.name}_scratch" if args.scratch else None,
                command=_recorded_command(args), replace_shipped=args.replace_shipped)
            last = history[-1]
            print(f"saved {path}: test mean IoU {last['test_mean_iou']:.4f}, "
                  f"pixel accuracy {last['test_pixel_acc']:.4f}")
            print(_where_pretrained_loads(args.name))
            return 0
        return _train_outcome(args, run)
    if args.scratch:
        print(f"minicnn train: --scratch is for the segmentation models "
              f"({', '.join(SEG_RECIPES)}), not {args.name}", file=sys.stderr)
        return 2
    if args.name not in RECIPES:
        print(f"minicnn train: no recipe for {args.name!r}; known: "
              f"{', '.join(list(RECIPES) + list(SEG_RECIPES))}", file=sys.stderr)
        return 2

    def run():
        path, history = train_recipe(args.name, out_dir=args.out, data_root=args.data,
                                     epochs=args.epochs, seed=args.seed, resume=args.resume,
                                     lr=args.lr, init=args.init, command=_recorded_command(args),
                                     replace_shipped=args.replace_shipped)
        print(f"saved {path}: test accuracy {history[-1]['test_acc']:.4f}")
        print(_where_pretrained_loads(args.name))
        return 0
    return _train_outcome(args, run)


def _cmd_assignment(args):
    from .homework import assignment
    if args.action == "make":
        out = assignment.make(args.out, args.parts, force=args.force, solution=args.solution,
                              notebook=args.notebook)
        print(f"wrote the assignment {out}: students start with {out / 'README.md'}")
        if args.notebook:
            print(f"notebooks, one per part: jupyter lab {out}")
    else:
        print(assignment.format_table(assignment.check(args.out)))
    return 0


def _cmd_weights(args):
    from .models import pretrained, registry
    if args.action == "list":
        print(pretrained.describe())
    elif args.action in ("fetch", "import") and not args.name:
        what = "NAME (a model, as `minicnn weights list` shows)" if args.action == "fetch" \
            else "FILE (the checkpoint to import)"
        print(f"minicnn weights: error: {args.action} needs {what}", file=sys.stderr)
        return 2
    elif args.action == "fetch":
        print(pretrained.fetch(args.name))
    elif args.action == "import":
        if not args.arch:
            print("minicnn weights: error: import FILE needs --arch NAME (the architecture "
                  "the checkpoint is for)", file=sys.stderr)
            return 2
        target = registry.import_weights(args.name, args.arch, out=args.out)
        print(registry.import_report(target, args.arch))
    return 0


def _cmd_export(args):
    """Load WEIGHTS (an .npz with manifest, a .pth/.safetensors with --arch, or a model name
    as `weights list` shows) into its architecture and write it as .pth, safetensors or ONNX."""
    from . import io
    from .models import pretrained, registry
    if args.torch_module:
        return _write_torch_module(args)
    if not args.weights:
        raise ValueError("give WEIGHTS (a weights file or a model name), or --torch-module NAME")
    source, arch = args.weights, args.arch
    fmt = io.export.format_of(args.out, args.format) if args.out else args.format
    if fmt is None:
        raise ValueError("give --format pth|safetensors|onnx or --out with one "
                         "of the extensions .pth, .safetensors, .onnx")
    if (args.opset is not None or args.dynamic_size) and fmt != "onnx":
        raise ValueError(f"--opset and --dynamic-size are ONNX settings; the format is {fmt}")
    opset = io.onnx_export.OPSET if args.opset is None else args.opset
    if fmt == "onnx" and opset not in io.onnx_export.supported_opsets():
        opsets = io.onnx_export.supported_opsets()
        raise ValueError(f"--opset {opset} is not supported: give one of "
                         f"{opsets.start}..{opsets.stop - 1}")
    stem = os.path.splitext(os.path.basename(os.path.normpath(source)))[0]
    out = io.paths.check_output_path(args.out or f"{stem}.{fmt}", "--out")
    if os.path.isfile(source) and os.path.exists(out) and os.path.samefile(source, out):
        raise ValueError(f"--out {out} is the weights file being read; write to another file")
    if args.size is not None and not all(1 <= side <= MAX_EXPORT_SIDE for side in args.size):
        raise ValueError(f"--size {args.size[0]} {args.size[1]}: each side must be between 1 and "
                         f"{MAX_EXPORT_SIDE} pixels (the export runs the model once at that size)")
    if os.path.isfile(source):
        state, meta = pretrained.read_weights(source)
        arch = arch or meta.get("architecture")
        if not arch:
            raise ValueError(f"{source}: no manifest names its architecture; give --arch "
                             f"(one of {', '.join(sorted(registry.ARCHITECTURES))})")
        model = pretrained.load_pretrained(registry.get_model(arch), source)
    elif source in registry.ARCHITECTURES:
        arch = source
        model = registry.get_model(arch, pretrained=True)
    else:
        raise ValueError(f"{source!r} is neither a weights file nor a model name; models: "
                         f"{', '.join(sorted(registry.ARCHITECTURES))}")
    written = io.export_model(model, out, fmt, size=args.size, opset=opset,
                              dynamic_size=args.dynamic_size)
    print(f"wrote {', '.join(written)} ({arch}, {fmt})")
    return 0


def _write_torch_module(args):
    """`export --torch-module NAME`: the PyTorch source of an architecture, to --out or NAME_torch.py."""
    from .io.paths import check_output_path
    from .models.torch_source import torch_module_source
    text = torch_module_source(args.torch_module)
    out = check_output_path(args.out or f"{args.torch_module}_torch.py", "--out")
    with open(out, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {out} (PyTorch source of {args.torch_module}; build() gives the module)")
    return 0


def _cmd_demo(args):
    from .gallery import build_gallery
    only = args.only.split(",") if args.only is not None else None
    result = build_gallery(args.out, only=only, model=args.model, images=args.image or (),
                           quick=args.quick, backend=args.backend, seed=args.seed)
    index = result.out / "index.html"
    print(f"wrote {len(result.figures())} figures and {index} in {result.seconds:.0f} s")
    for level, text in result.notes:
        print(f"minicnn demo: {level}: {text}", file=sys.stderr)
    for name, reason in result.skipped():
        print(f"minicnn demo: {name} skipped: {reason}", file=sys.stderr)
    for name, reason in result.failed():
        print(f"minicnn demo: {name} failed: {reason}", file=sys.stderr)
    for err in result.input_errors:
        print(f"minicnn demo: error: unreadable --image {err}", file=sys.stderr)
    failed = result.failed()
    if failed:
        print(f"minicnn demo: error: {len(failed)} figure(s) or section(s) failed: "
              f"{', '.join(name for name, _ in failed)}", file=sys.stderr)
    return 2 if result.input_errors else 1 if failed else 0     # a bad --image: usage error


def _cmd_data(args):
    from .data.fetch import DATASETS, DatasetFetchError, dataset_status, fetch_dataset
    if args.action == "list":
        for name in DATASETS:
            st = dataset_status(name)
            if st.found_in is not None:
                print(f"{name:14} {st.size_bytes / 1e6:7.1f} MB in {st.found_in}")
            else:
                print(f"{name:14} not found; get it: {st.how_to_get}")
        return 0
    if args.name is None:
        raise ValueError(f"fetch needs a dataset name: {', '.join(DATASETS)}")
    if args.name not in DATASETS:
        raise ValueError(f"no dataset {args.name!r}; choose one of {', '.join(DATASETS)}")
    try:
        done = fetch_dataset(args.name)
    except DatasetFetchError as err:
        print(f"minicnn data: error: {err}", file=sys.stderr)
        return 1
    for path, how in done:
        print(f"{path}: {how}")
    return 0


def _listing(title, names, width=78):
    """``title:`` then the names, comma-separated and wrapped, indented (for --help)."""
    import textwrap
    return f"{title}:\n" + textwrap.fill(", ".join(names), width, initial_indent="  ",
                                          subsequent_indent="  ", break_on_hyphens=False)


def _cmd_explore(args):
    from .explore import serve
    return serve(args.model, port=args.port, images=args.images, host=args.host,
                 backend=args.backend, weights=args.weights)


def _port(text):
    """--port: an int in 0..65535 (0: any free port); argparse turns the error into exit 2."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number 0..65535, got {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0..65535 (0: any free port), got {port}")
    return port


def _seed(text):
    """--seed: an int in 0..2**32-1, what NumPy's generators take."""
    try:
        seed = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if not 0 <= seed < 2 ** 32:
        raise argparse.ArgumentTypeError(f"must be between 0 and 2**32-1, got {seed}")
    return seed


def build_parser():
    p = argparse.ArgumentParser(prog="minicnn", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("gradcheck", help="gradient-check every built-in op")
    g.add_argument("--only", help="comma-separated op names")
    g.add_argument("--seed", type=_seed, default=0)
    g.set_defaults(fn=_cmd_gradcheck)

    b = sub.add_parser("bench", help="benchmark beside PyTorch CPU")
    b.add_argument("--only", help="comma-separated section names")
    b.set_defaults(fn=_cmd_bench)

    t = sub.add_parser("train", help="train a shipped model by its recipe")
    t.add_argument("name", help="fashion_net, cifar_net, or a segmentation model: segnet, "
                                "segnet_transposed, unet")
    t.add_argument("--epochs", type=int)
    t.add_argument("--seed", type=_seed, default=0)
    t.add_argument("--data", help="dataset file or folder (default: standard locations)")
    t.add_argument("--out", help="folder for <name>.npz + .json (default: <cache>/trained, "
                                 "which pretrained=True does not read)")
    t.add_argument("--replace-shipped", action="store_true",
                   help="write into the shipped weights/ folder; the file there is kept if "
                        "the new run scores lower or diverges")
    t.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    t.add_argument("--lr", type=float, help="peak learning rate (default: the recipe's)")
    t.add_argument("--init", metavar="FILE",
                   help="start from these weights (.npz + manifest): a new cosine cycle "
                        "from trained weights (fashion_net, cifar_net)")
    t.add_argument("--scratch", action="store_true",
                   help="segmentation models: random encoder instead of fashion_net's convs "
                        "(saved as <name>_scratch.npz, for the comparison)")
    t.set_defaults(fn=_cmd_train)

    from .homework.assignment import PARTS
    hw = sub.add_parser("assignment", help="homework: write a folder of bodies to fill in, score it")
    hw_sub = hw.add_subparsers(dest="action", required=True)
    hm = hw_sub.add_parser("make", help="write a homework folder (package, tests, README)")
    hm.add_argument("out", help="the folder to write (must be new or empty)")
    hm.add_argument("--parts", required=True, help="comma-separated, or 'all': " + ", ".join(PARTS))
    hm.add_argument("--force", action="store_true", help="replace the generated files in OUT")
    hm.add_argument("--solution", action="store_true", help="keep the bodies (the answer key)")
    hm.add_argument("--notebook", action="store_true",
                    help="also one Jupyter notebook per part (the idea, gradient check, tests, a figure)")
    hw_sub.add_parser("check", help="run each part's tests, print passed/total").add_argument(
        "out", help="an assignment folder")
    hw.set_defaults(fn=_cmd_assignment)

    w = sub.add_parser("weights", help="list / fetch / import pretrained weights")
    w.add_argument("action", choices=["list", "fetch", "import"])
    w.add_argument("name", nargs="?", help="model name (fetch) or checkpoint file (import)")
    w.add_argument("--arch", help="architecture of an imported file")
    w.add_argument("--out", help="where to write the imported .npz (default: the cache)")
    w.set_defaults(fn=_cmd_weights)

    da = sub.add_parser("data", help="list the datasets (where found, size) or fetch one")
    da.add_argument("action", choices=["list", "fetch"])
    da.add_argument("name", nargs="?", help="fashion-mnist, mnist or cifar10 (fetch)")
    da.set_defaults(fn=_cmd_data)

    e = sub.add_parser("export", help="write weights as a PyTorch .pth, safetensors or ONNX file")
    e.add_argument("weights", nargs="?", help="a weights file (.npz + manifest, .pth, "
                                              ".safetensors) or a model name as `minicnn "
                                              "weights list` shows")
    e.add_argument("--format", choices=["pth", "safetensors", "onnx"],
                   help="default: the extension of --out (.pth, .safetensors, .onnx)")
    e.add_argument("--out", help="the file to write (default: ./<name>.<format>); a .pth gets "
                                 "its labels and preprocessing in <out>.json beside it")
    e.add_argument("--arch", help="architecture of a file without a manifest (.pth, .safetensors)")
    e.add_argument("--size", type=int, nargs=2, metavar=("H", "W"),
                   help="ONNX input height and width (default: the model's input size)")
    e.add_argument("--dynamic-size", action="store_true",
                   help="ONNX input of any height and width where no op fixes them (e.g. "
                        "squeezenet1_1, resnet18; the encoder-decoders, which take any size, "
                        "are exported so without it)")
    e.add_argument("--torch-module", metavar="NAME",
                   help="write the PyTorch source of architecture NAME instead (to --out or "
                        "./NAME_torch.py); its build() loads the exported .pth with strict=True")
    e.add_argument("--opset", type=int, help="ONNX opset version (default 17; 13 up to what the "
                                             "installed onnx knows)")
    e.set_defaults(fn=_cmd_export)

    from .gallery import SECTION_NAMES
    from .models import MODELS
    d = sub.add_parser("demo", help="run every technique and write an HTML gallery",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=_listing("sections (--only, in this order)", SECTION_NAMES) +
                       "\n\n" + _listing("models (--model)", sorted(MODELS)))
    d.add_argument("--out", default="minicnn-gallery", help="output folder (default ./minicnn-gallery)")
    d.add_argument("--only", help="comma-separated sections, e.g. saliency,grad_cam (listed "
                                  "below)")
    d.add_argument("--model", help="run on this model only, one of those listed below (default: "
                                   "fashion_net + an ImageNet model when available offline)")
    d.add_argument("--image", action="append", metavar="PATH", help="a photo to use (repeatable)")
    d.add_argument("--quick", action="store_true", help="small sizes and few iterations")
    d.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    d.add_argument("--seed", type=_seed, default=0)
    d.set_defaults(fn=_cmd_demo)

    e = sub.add_parser("explore", help="a local web page: activations, units, projections, "
                                       "attributions, weights and gradients, live")
    e.add_argument("--model", default="fashion_net", help="fashion_net (default), cifar_net, "
                   "an ImageNet model with weights installed, or module:function returning "
                   "your own network")
    e.add_argument("--port", type=_port, default=8000, help="port (default 8000; 0: any free port)")
    e.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    e.add_argument("--images", metavar="DIR", help="image files for the units' top-9 (added to "
                                                   "the samples and installed test sets)")
    e.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    e.add_argument("--weights", metavar="FILE", help="weights for --model from a file (.npz, "
                                                     ".pth, .safetensors), e.g. a run saved "
                                                     "by the Train tab")
    e.set_defaults(fn=_cmd_explore)
    return p


def _write_log(command):
    """Save the current exception's traceback to a file; returns its path (or a note)."""
    from . import io
    text = traceback.format_exc()
    try:
        folder = os.path.join(io.cache_dir(), "logs")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"minicnn-{command}-{time.strftime('%Y%m%d-%H%M%S')}.log")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path
    except OSError:
        sys.stderr.write(text)
        return "the traceback above"


def main(argv=None):
    """Run one command. Bad input ends in one line ``minicnn CMD: error: ...`` and exit 2;
    Ctrl-C in 130; an unexpected internal error in one line naming the log file holding
    its traceback, and exit 3."""
    args = build_parser().parse_args(argv)
    from .backend import keep_freed_memory
    keep_freed_memory()        # arrays' memory reused step after step (backend.py says why)
    try:
        return args.fn(args)
    except KeyboardInterrupt:
        print(f"minicnn {args.command}: interrupted (Ctrl-C)", file=sys.stderr)
        return 130
    except (ValueError, TypeError, KeyError, OSError, RuntimeError) as e:   # OSError: files
        message = str(e.args[0] if isinstance(e, KeyError) and e.args else e)
        message = message.removeprefix(f"{args.command}: ")     # said once, in front
        print(f"minicnn {args.command}: error: {message}", file=sys.stderr)
        return 2
    except Exception as e:                     # noqa: BLE001 — a bug or the machine's limits
        log = _write_log(args.command)
        print(f"minicnn {args.command}: internal error {type(e).__name__}: {e}; the traceback "
              f"is in {log}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
